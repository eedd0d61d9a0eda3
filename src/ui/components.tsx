/** Small pieces every page uses: loading and error states, pagers, copy fields, confirmations. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload(): void;
}

/** Runs `load` when `deps` change (and on reload); a newer run's answer wins over an older one's. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    load().then(
      (data) => current && setState({ data, loading: false }),
      (error: unknown) => current && setState({ error, loading: false }),
    );
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  return { data: state.data, error: state.error, loading: state.loading, reload: useCallback(() => setRound((n) => n + 1), []) };
}

export function message(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.code}, HTTP ${error.status})`;
  return error instanceof Error ? error.message : String(error);
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="note error" role="alert">
      {message(error)}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** Previous/next over cursor pages: the page keeps a stack of the cursors it came through. */
export function Pager(props: { label: string; page: number; hasNext: boolean; onPrevious(): void; onNext(): void; summary?: string }) {
  return (
    <nav class="pager" aria-label={`${props.label} pages`}>
      <button type="button" onClick={props.onPrevious} disabled={props.page === 0}>
        ← Previous
      </button>
      <span aria-live="polite">
        Page {props.page + 1}
        {props.summary ? ` · ${props.summary}` : ''}
      </span>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext}>
        Next →
      </button>
    </nav>
  );
}

/** Cursor paging state: the cursors of the pages before, and the one of the current page. */
export function useCursorPages(resetKey: unknown) {
  const [cursors, setCursors] = useState<string[]>([]);
  useEffect(() => setCursors([]), [resetKey]);
  return {
    page: cursors.length,
    cursor: cursors[cursors.length - 1],
    next: (cursor: string) => setCursors((list) => [...list, cursor]),
    previous: () => setCursors((list) => list.slice(0, -1)),
  };
}

/** A read-only field with a button that copies its text. */
export function CopyField({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // Clipboard refused (no permission, plain HTTP): select the text for Ctrl+C instead.
      input.current?.select();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <div class="copy-field">
      <label>
        <span>{label}</span>
        <input ref={input} readOnly value={value} onFocus={(event) => (event.currentTarget as HTMLInputElement).select()} />
      </label>
      <button type="button" onClick={copy} aria-label={`Copy: ${label}`}>
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

export interface Confirmation {
  title: string;
  body: ComponentChildren;
  confirm: string;
}

/** A modal confirmation (the native dialog: focus kept inside, Escape cancels); `ask` resolves with the answer. */
export function useConfirm(): [ComponentChildren, (question: Confirmation) => Promise<boolean>] {
  const dialog = useRef<HTMLDialogElement>(null);
  const [question, setQuestion] = useState<(Confirmation & { answer(yes: boolean): void }) | null>(null);
  useEffect(() => {
    if (question && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [question]);
  const close = (yes: boolean) => {
    dialog.current?.close();
    question?.answer(yes);
    setQuestion(null);
  };
  const element = question ? (
    <dialog ref={dialog} aria-labelledby="confirm-title" onCancel={() => close(false)}>
      <h2 id="confirm-title">{question.title}</h2>
      <div>{question.body}</div>
      <div class="actions">
        <button type="button" onClick={() => close(false)} autoFocus>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => close(true)}>
          {question.confirm}
        </button>
      </div>
    </dialog>
  ) : null;
  const ask = (next: Confirmation) => new Promise<boolean>((resolve) => setQuestion({ ...next, answer: resolve }));
  return [element, ask];
}

/** Runs an action, keeping its error (or a success message) to show beside the control. */
export function useAction() {
  const [state, setState] = useState<{ busy: boolean; error?: unknown; done?: string }>({ busy: false });
  const run = async (action: () => Promise<string | void>) => {
    setState({ busy: true });
    try {
      const done = await action();
      setState({ busy: false, done: done ?? undefined });
    } catch (error) {
      setState({ busy: false, error });
    }
  };
  return { ...state, run };
}

export function Status({ action }: { action: { error?: unknown; done?: string } }) {
  if (action.error) return <ErrorNote error={action.error} />;
  if (action.done) return <p class="note ok" role="status">{action.done}</p>;
  return null;
}

/** A column heading: its label, right-aligned for numbers, or read out only (action columns). */
export type Column = string | { label: string; number?: boolean; hidden?: boolean };

/** A table in its own scrolling box (wide tables scroll there, not the page), labelled for screen readers. */
export function DataTable({ label, columns, children, class: className }: { label: string; columns: Column[]; children: ComponentChildren; class?: string }) {
  return (
    <div class="table-wrap">
      <table class={className} aria-label={label}>
        <thead>
          <tr>
            {columns.map((column) => {
              const { label: text, number, hidden } = typeof column === 'string' ? { label: column, number: false, hidden: false } : column;
              return (
                <th scope="col" class={number ? 'number' : undefined}>
                  {hidden ? <span class="visually-hidden">{text}</span> : text}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A button whose action runs only once the user confirmed it in the page's dialog. */
export function ConfirmedButton(props: {
  label: string;
  /** The accessible name, naming what it acts on ("Revoke robot+ci"). */
  name: string;
  ask(question: Confirmation): Promise<boolean>;
  question: Confirmation;
  action: ReturnType<typeof useAction>;
  run(): Promise<string>;
}) {
  return (
    <button
      type="button"
      class="danger"
      aria-label={props.name}
      disabled={props.action.busy}
      onClick={() =>
        props.action.run(async () => {
          if (!(await props.ask(props.question))) return;
          return props.run();
        })
      }
    >
      {props.label}
    </button>
  );
}

/** A form's submit handler: runs `handle` with the form's fields through `action`, and empties the form once it succeeded. */
export function submitWith(action: ReturnType<typeof useAction>, handle: (form: FormData) => Promise<string | void>) {
  return (event: Event) => {
    event.preventDefault();
    const element = event.currentTarget as HTMLFormElement;
    void action.run(async () => {
      const done = await handle(new FormData(element));
      element.reset();
      return done;
    });
  };
}

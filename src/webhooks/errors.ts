/** The one refusal type of the webhook services; the admin API maps its kind to a status and code. */
export type WebhookErrorKind = 'invalid' | 'unauthorized' | 'not_found' | 'conflict' | 'read_only';

/** A refusal the API turns into 400, 401, 404 or 409. */
export class WebhookError extends Error {
  constructor(
    readonly kind: WebhookErrorKind,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'WebhookError';
  }
}

/**
 * Reads a tar archive on disk (plain or gzip-compressed) entry by entry with tar-stream, never
 * holding more than one chunk of an entry in memory. Entry names are normalised (`./a/b` and
 * `a//b` are `a/b`); names that climb out of the archive (`../x`) are skipped, since an import
 * matches names and never writes them to disk.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface TarEntryHeader {
  /** Normalised path inside the archive. */
  name: string;
  type: 'file' | 'symlink' | 'link' | 'directory' | 'other';
  size: number;
  /** For links: the normalised path the link resolves to. */
  target?: string;
}

/**
 * Called with each entry and its bytes (read them with `for await`, or hand `Readable.from(body)`
 * to a stream consumer); whatever is left unread is skipped after it returns.
 */
export type EntryVisitor = (header: TarEntryHeader, body: AsyncIterable<Buffer>) => Promise<void>;

/** Calls `visit` for every entry, in archive order, one at a time. */
export async function readTar(file: string, visit: EntryVisitor): Promise<void> {
  const gzip = await isGzip(file);
  const extract = tar.extract();
  const source = createReadStream(file);
  const input = gzip ? source.pipe(createGunzip()) : source;
  const fail = (error: Error) => extract.destroy(error);
  source.once('error', fail);
  if (gzip) input.once('error', (error: Error) => fail(new ArchiveError(`archive is not valid gzip: ${error.message}`)));
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      const header = normaliseHeader(entry.header);
      if (header) await visit(header, entry as AsyncIterable<Buffer>);
      // Whatever the visitor left unread is skipped (tar-stream needs each entry drained).
      entry.resume();
    }
  } catch (error) {
    source.destroy();
    if (error instanceof ArchiveError) throw error;
    const message = (error as Error).message ?? String(error);
    if (/tar|header|unexpected end|gzip|incorrect header/i.test(message)) throw new ArchiveError(`not a readable tar archive: ${message}`);
    throw error;
  }
}

async function isGzip(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r');
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** A normalised archive path, or null for one outside the archive. */
export function normaliseName(name: string): string | null {
  const normalised = path.posix.normalize(name.replace(/\\/g, '/')).replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
  if (normalised === '' || normalised === '.' || normalised === '..' || normalised.startsWith('../')) return null;
  return normalised;
}

function normaliseHeader(header: tar.Header): TarEntryHeader | null {
  const name = normaliseName(header.name);
  if (name === null) return null;
  const size = header.size ?? 0;
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return { name, type: 'file', size };
    case 'directory':
      return { name, type: 'directory', size: 0 };
    case 'symlink': {
      // Relative to the link's own folder (docker save links duplicate layers as ../<id>/layer.tar).
      const target = header.linkname ? normaliseName(path.posix.join(path.posix.dirname(name), header.linkname)) : null;
      return target ? { name, type: 'symlink', size: 0, target } : { name, type: 'other', size: 0 };
    }
    case 'link': {
      // Hard links name their target from the archive's root.
      const target = header.linkname ? normaliseName(header.linkname) : null;
      return target ? { name, type: 'link', size: 0, target } : { name, type: 'other', size: 0 };
    }
    default:
      return { name, type: 'other', size: 0 };
  }
}

/**
 * Moving images in and out without a daemon, for admins:
 *
 *   POST /api/v1/import   multipart/form-data: `repository`, `tag`, optional `source` (which image
 *                         of a multi-image archive), and the file field `archive` (a docker save or
 *                         OCI layout tarball, plain or gzip). The file streams to a temporary file
 *                         under the storage root (never into memory), capped at import.maxBytes (413
 *                         beyond), is imported, then removed. 201 with what was imported.
 *   GET  /api/v1/export/<name>:<tag>  (or <name>@<digest>)  streams an OCI layout tarball.
 */
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import express, { type ErrorRequestHandler, type IRouter, type Request, type RequestHandler } from 'express';
import multer from 'multer';
import { parseImageReference, type ImageExporter } from '../../transfer/export.js';
import type { ImageImporter } from '../../transfer/import.js';
import { ArchiveError } from '../../transfer/tar-reader.js';
import { caller } from '../wire.js';

const ARCHIVE_FIELD = 'archive';

export interface TransferRoutesOptions {
  importer: ImageImporter;
  exporter: ImageExporter;
  /** Folder for uploaded archives while they are imported (on the storage root's filesystem). */
  tempDir: string;
  /** Largest archive accepted, in bytes. */
  maxBytes: number;
  /** Who may import and export (the admin guard). */
  guard: RequestHandler;
}

export function registerTransferAdminRoutes(target: IRouter, options: TransferRoutesOptions): void {
  const { importer, exporter, tempDir, maxBytes, guard } = options;
  const upload = multer({
    storage: multer.diskStorage({ destination: tempDir }),
    limits: { fileSize: maxBytes, files: 1, fields: 10, fieldSize: 4096, parts: 12 },
  }).single(ARCHIVE_FIELD);

  const router = express.Router({ caseSensitive: true, strict: false });

  // The guard runs before multer, so nothing of an unauthorised upload is written to disk.
  router.post('/import', guard, upload, async (req, res) => {
    const file = req.file;
    try {
      if (!file?.path) throw new ArchiveError(`send the archive as the multipart file field "${ARCHIVE_FIELD}"`);
      const fields = (req.body ?? {}) as Record<string, unknown>;
      const repository = textField(fields, 'repository', true);
      const tag = textField(fields, 'tag', true);
      const source = textField(fields, 'source', false);
      const result = await importer.import(file.path, { repository, tag, source, actor: caller(res).actor });
      res.status(201).location(`/v2/${result.repository}/manifests/${result.digest}`).json(result);
    } finally {
      if (file?.path) await fs.rm(file.path, { force: true });
    }
  });

  router.get(/^\/export\/(.+)$/, guard, async (req, res) => {
    const { repository, reference } = parseImageReference((req.params as Record<number, string>)[0] ?? '');
    const image = await exporter.export(repository, reference);
    const fileName = `${repository.replace(/\//g, '_')}-${reference.replace(/[:@]/g, '_')}.tar`;
    res.status(200).set({
      'Content-Type': 'application/x-tar',
      'Content-Disposition': `attachment; filename="${fileName}"`,
      'Docker-Content-Digest': image.digest,
      'Cache-Control': 'no-store',
    });
    try {
      await pipeline(image.stream, res);
    } catch {
      // A blob could not be read, or the client went away: headers are sent, so cut the connection.
      res.destroy();
    }
  });

  router.use(errorHandler);
  target.use('/api/v1', router);
}

function textField(fields: Record<string, unknown>, name: string, required: true): string;
function textField(fields: Record<string, unknown>, name: string, required: false): string | undefined;
function textField(fields: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const value = fields[name];
  if (value === undefined || value === '') {
    if (required) throw new ArchiveError(`the form field "${name}" is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw new ArchiveError(`the form field "${name}" must be given once`);
  return value;
}

/** Archive and upload problems are 400/413 here; registry errors go on to the app's handler. */
const errorHandler: ErrorRequestHandler = (error, _req: Request, res, next) => {
  if (error instanceof ArchiveError) {
    res.status(400).json({ errors: [{ code: 'ARCHIVE_INVALID', message: error.message }] });
    return;
  }
  if (error instanceof multer.MulterError) {
    const tooLarge = error.code === 'LIMIT_FILE_SIZE';
    res.status(tooLarge ? 413 : 400).json({
      errors: [{ code: tooLarge ? 'ARCHIVE_TOO_LARGE' : 'ARCHIVE_INVALID', message: tooLarge ? 'the archive exceeds import.maxBytes' : `bad upload: ${error.message}`, ...(error.field ? { detail: { field: error.field } } : {}) }],
    });
    return;
  }
  next(error);
};

/** Settings of the web interface served under /ui/ (docs/ui.md). */
import { z } from 'zod';

export const uiConfigSchema = z
  .object({
    /** Serve the web interface under /ui/ (and redirect / there). */
    enabled: z.boolean().default(true),
    /**
     * Folder of the built interface (index.html and assets/, as `npm run build` writes them to
     * dist/ui). Unset: this installation's own dist/ui.
     */
    assetsDir: z.string().min(1, 'must not be empty').optional(),
  })
  .strict()
  .prefault({});

export type UiConfig = z.infer<typeof uiConfigSchema>;

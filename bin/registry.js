#!/usr/bin/env node
// The `registry` admin CLI (src/cli/main.ts).
import { launch } from './launch.js';

await launch('cli/main');

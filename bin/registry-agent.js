#!/usr/bin/env node
// The `registry-agent` deploy agent (src/agent/main.ts).
import { launch } from './launch.js';

await launch('agent/main');

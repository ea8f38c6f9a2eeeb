// Where the test tools (acorn, typescript) are: installed by tests/node_tools.py into a folder of their own.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOOLS = process.env.HUB_NODE_TOOLS;
if (!TOOLS) throw new Error('HUB_NODE_TOOLS is not set: run these through pytest (tests/test_client_package.py)');
export const tool = createRequire(path.join(TOOLS, 'package.json'));
export const TSC = path.join(TOOLS, 'node_modules', 'typescript', 'bin', 'tsc');
export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const WEB = path.resolve(HERE, '..', '..', 'web');

// The client as the portal and the app get it: `npm pack` of web/, installed by name into a project of
// its own, imported as ESM, and type-checked with `tsc --strict` against a consumer of its types.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { HERE, TSC, WEB } from './tools.mjs';

const NAME = JSON.parse(readFileSync(path.join(WEB, 'package.json'), 'utf8')).name;
let work;
let tarball;
let project;

before(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'hub-client-'));
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: WEB, encoding: 'utf8' }));
  tarball = path.join(work, packed[0].filename);
  project = path.join(work, 'consumer');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // A tarball with no dependencies installs without the registry.
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: project, stdio: 'pipe' });
});

after(() => rmSync(work, { recursive: true, force: true }));

test('the package holds the client, its types, README and licence, nothing else', () => {
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  assert.deepEqual(files, [
    'package/LICENSE',
    'package/README.md',
    'package/hub-client.d.ts',
    'package/hub-client.js',
    'package/package.json',
  ]);
});

test('the installed package imports by name as ESM, with every export', async () => {
  const script = `import('${NAME}').then((m) => console.log(JSON.stringify(Object.keys(m).sort())))`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), ['HubClient', 'HubError', 'compareEventIds', 'decodeJwt', 'hubRequest', 'userIdFromSub', 'userIdFromToken']);
});

test('the shipped file is the source itself, byte for byte (no build step)', () => {
  const installed = path.join(project, 'node_modules', ...NAME.split('/'), 'hub-client.js');
  assert.equal(readFileSync(installed, 'utf8'), readFileSync(path.join(WEB, 'hub-client.js'), 'utf8'));
});

function typeCheck(file) {
  const target = path.join(project, path.basename(file));
  copyFileSync(file, target);
  const args = [TSC, '--strict', '--noEmit', '--target', 'es2017', '--lib', 'es2017,dom', '--module', 'esnext',
    '--moduleResolution', 'bundler', target];
  const run = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8' });
  return { status: run.status, errors: run.stdout.split('\n').filter((line) => /error TS\d+/.test(line)) };
}

test('a consumer of every option, event and method type-checks under --strict', () => {
  const { status, errors } = typeCheck(path.join(HERE, 'consumer.ts'));
  assert.deepEqual(errors, []);
  assert.equal(status, 0);
});

test('a wrong event name, field or option is a compile error, each on its line', () => {
  const source = readFileSync(path.join(HERE, 'consumer-mistakes.ts'), 'utf8').split('\n');
  const expected = source.flatMap((line, i) => (line.includes('// error:') ? [i + 1] : []));
  const { errors } = typeCheck(path.join(HERE, 'consumer-mistakes.ts'));
  const lines = errors.map((line) => Number(/\((\d+),\d+\)/.exec(line)[1]));
  assert.deepEqual([...new Set(lines)].sort((a, b) => a - b), expected, errors.join('\n'));
});

// Android System WebView 61 (Chrome 61) parses ES2017 and nothing newer: one `?.` fails the whole file,
// so every script the package ships and the page loads is parsed as ES2017 here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { WEB, tool } from './tools.mjs';

const acorn = tool('acorn');
const parse2017 = (source) => acorn.parse(source, { ecmaVersion: 2017, sourceType: 'module' });

function scripts(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : scripts(full);
    return /\.m?js$/.test(entry.name) ? [full] : [];
  });
}

const shipped = scripts(WEB);

test('the client and the page scripts are all there to check', () => {
  const names = shipped.map((file) => path.relative(WEB, file));
  assert.ok(names.includes('hub-client.js'), names.join(', '));
  assert.ok(names.includes('app.js'), names.join(', '));
});

for (const file of shipped) {
  test(`${path.relative(WEB, file)} is ES2017`, () => {
    parse2017(readFileSync(file, 'utf8'));
  });
}

// The parser really refuses what Chrome 61 cannot run, so the checks above can fail.
for (const newer of ['a?.b', 'a ?? b', 'a ??= b', 'class A { #x = 1 }', 'class A { x = 1 }', 'try {} catch {}',
  'const o = { ...a }', 'const n = 10_000', '/(?<=_)/', 'for await (const x of y) {}']) {
  test(`ES2017 parsing refuses ${newer}`, () => {
    assert.throws(() => parse2017(`async function f() { ${newer}; }`), SyntaxError);
  });
}

'use strict'

// The generated typings (index.d.ts: napi-rs output from src/ below
// types/header.d.ts) compile under tsc --strict, describe a realistic use
// of every exported class (test/types/usage.ts), and carry doc comments.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')

test('index.d.ts compiles under tsc --strict together with a usage file', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  assert.ok(fs.existsSync(tsc), 'typescript is installed (it comes with @napi-rs/cli)')
  // Checking @types/node itself takes most of tsc's time, so library
  // declarations are skipped; to keep index.d.ts checked all the same it
  // is compiled as an ordinary module (index.ts) in a scratch directory.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsock-typings-'))
  try {
    fs.copyFileSync(path.join(ROOT, 'index.d.ts'), path.join(dir, 'index.ts'))
    const usage = fs.readFileSync(path.join(__dirname, 'types', 'usage.ts'), 'utf8')
    assert.match(usage, /from '\.\.\/\.\.'/)
    fs.writeFileSync(path.join(dir, 'usage.ts'), usage.replaceAll("from '../..'", "from './index'"))
    execFileSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'commonjs',
        '--types', 'node', '--typeRoots', path.join(ROOT, 'node_modules', '@types'),
        path.join(dir, 'index.ts'), path.join(dir, 'usage.ts')],
      { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' },
    )
  } catch (e) {
    assert.fail(`tsc reported:\n${e.stdout}${e.stderr}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('index.d.ts documents what it declares and matches the exports', () => {
  const dts = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8')
  const evsock = require('..')
  for (const name of ['Connection', 'Session', 'WebSocket', 'SessionPeer', 'attachServer', 'connect',
    'attachSessionServer', 'connectSession', 'peekHello', 'newSessionId', 'encodeGoAway', 'now']) {
    assert.ok(name in evsock, `${name} is exported`)
    const decl = new RegExp(`\\*/\\s*export declare (?:class|function|const) ${name}\\b`)
    assert.match(dts, decl, `${name} is declared with a doc comment`)
  }
  // Every method of the native classes has its comment.
  for (const cls of ['Connection', 'Session']) {
    const body = dts.slice(dts.indexOf(`export declare class ${cls} `))
    const block = body.slice(0, body.indexOf('\n}\n'))
    const methods = block.split('\n').filter((l) => /^  (static )?(get )?[a-zA-Z]+\(/.test(l))
    assert.ok(methods.length >= 8, `${cls} declares its methods`)
    for (const m of methods) {
      const before = block.slice(0, block.indexOf(m)).trimEnd()
      assert.ok(before.endsWith('*/'), `${cls}: ${m.trim()} has a doc comment`)
    }
  }
})

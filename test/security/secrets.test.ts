import { test } from 'node:test'
import assert from 'node:assert/strict'
import { basicAuth, maskCredentials, splitCredentials } from '../../src/security/secrets.ts'
import { RagstreamError, ServiceUnavailableError } from '../../src/errors.ts'
import { formatError } from '../../src/cli/command.ts'
import { redactUrl } from '../../src/config/endpoints.ts'
import { checkSchemaRegistry } from '../../src/config/services.ts'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

test('every URL password in a text is masked, the user and host stay', () => {
  const cases: [string, string][] = [
    ['fetch failed: http://reg:s3cret@10.0.0.5:8081/apis', 'fetch failed: http://reg:***@10.0.0.5:8081/apis'],
    ['a postgres://me:p%40ss@db/x and redis://:hunter2@r:6379 b', 'a postgres://me:***@db/x and redis://:***@r:6379 b'],
    ['https://u:pa@ss@host/p', 'https://u:***@host/p'],
    // No credentials: unchanged (a port is not a password, an @ in a path is not a user).
    ['http://host:8081/path@x and postgres://me@db/x', 'http://host:8081/path@x and postgres://me@db/x'],
  ]
  for (const [text, masked] of cases) assert.equal(maskCredentials(text), masked)
  assert.equal(redactUrl('not a url postgres://a:b@c'), 'not a url postgres://a:***@c')
})

test('a RagstreamError never carries a password, whatever its cause quoted', () => {
  const cause = new TypeError(
    'Request cannot be constructed from a URL that includes credentials: http://u:topsecret@h/x',
  )
  const error = new ServiceUnavailableError('the schema registry', 'http://u:***@h/x', cause)
  assert.doesNotMatch(error.message, /topsecret/)
  assert.match(error.message, /http:\/\/u:\*\*\*@h\/x/)
  const hinted = new RagstreamError('RS_CONFIG_INVALID', 'x', { hint: 'try postgres://a:topsecret@b' })
  assert.doesNotMatch(formatError(hinted, {}), /topsecret/)
  assert.doesNotMatch(formatError(cause, {}), /topsecret/)
  assert.doesNotMatch(formatError(cause, { RAGSTREAM_DEBUG: '1' }), /topsecret/)
})

test('credentials leave the URL for the Authorization header', () => {
  assert.deepEqual(splitCredentials('http://reg%20user:p%3Ass@h:8081/apis/ccompat/v7/'), {
    url: 'http://h:8081/apis/ccompat/v7',
    username: 'reg user',
    password: 'p:ss',
  })
  assert.deepEqual(splitCredentials('http://h:8081/x'), { url: 'http://h:8081/x' })
  const auth = basicAuth('http://u:p@h/x')
  assert.equal(auth.url, 'http://h/x')
  assert.equal(auth.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`)
})

test('a registry URL with credentials works (Basic auth) and its password never shows in errors', async (t) => {
  const seen: (string | undefined)[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization)
    res.writeHead(req.headers.authorization === `Basic ${Buffer.from('reg:s3cret').toString('base64')}` ? 200 : 401)
    res.end('[]')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const { port } = server.address() as AddressInfo
  await checkSchemaRegistry(`http://reg:s3cret@127.0.0.1:${port}`)
  assert.deepEqual(seen, [`Basic ${Buffer.from('reg:s3cret').toString('base64')}`])
  await assert.rejects(checkSchemaRegistry(`http://reg:wrong-s3cret@127.0.0.1:${port}`), (e: unknown) => {
    assert.ok(e instanceof RagstreamError && e.code === 'RS_SERVICE_UNAVAILABLE')
    assert.doesNotMatch(e.message, /wrong-s3cret/)
    return true
  })
  // Nothing listens: the error names the service and masks the password.
  server.close()
  await assert.rejects(checkSchemaRegistry(`http://reg:s3cret@127.0.0.1:${port}`), (e: unknown) => {
    assert.ok(e instanceof RagstreamError && e.code === 'RS_SERVICE_UNAVAILABLE')
    assert.match(e.message, /schema registry/)
    assert.doesNotMatch(formatError(e, {}), /s3cret/)
    return true
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

const KEYS = [
  'AKIAIOSFODNN7EXAMPLE',
  'ASIAY34FZKBOKMUTVV7A',
  'ghp_R2d2C3poLuke1Skywalker0Leia2Organa3H',
  'github_pat_11ABCDEFG0123456789abc_defGHIJKLmnopQRSTuvwxYZ0123456789abcdefGHIJKLMNOPQRSTU',
  'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
  'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'rk_test_51H8abcDEF123ghiJKL456',
  'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z',
  'sk-abcdefghij0123456789KLMNOPQRSTUV',
  'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
]

test('credentials with known prefixes are masked whole', () => {
  for (const value of KEYS) {
    const out = run(`key: ${value} (rotated?)`)
    assert.equal(out.text, 'key: [SECRET] (rotated?)', value)
    assert.deepEqual(out.counts, { secret: 1 }, value)
  }
})

test('PEM private key blocks are masked from BEGIN to END, and truncated ones through the body', () => {
  const block =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDhLkZ1bD+v/8r==\n-----END OPENSSH PRIVATE KEY-----'
  assert.equal(run(`config:\n${block}\nthanks`).text, 'config:\n[SECRET]\nthanks')
  const truncated =
    '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n'
  const out = run(`pasted: ${truncated}-- sorry, cut off`)
  assert.equal(out.text, 'pasted: [SECRET]\n-- sorry, cut off')
})

test('PEM blocks pasted on one line, JSON-escaped, or with encryption headers are masked whole', () => {
  const body = 'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw'
  assert.equal(run(`k: -----BEGIN PRIVATE KEY----- ${body} AB12== -----END PRIVATE KEY----- ok`).text, 'k: [SECRET] ok')
  assert.equal(
    run(`{"key":"-----BEGIN EC PRIVATE KEY-----\\n${body}\\n-----END EC PRIVATE KEY-----\\n"}`).text,
    '{"key":"[SECRET]\\n"}',
  )
  const encrypted = `-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,8A72B1C3D4E5F60718293A4B5C6D7E8F\n\n${body}\n-----END RSA PRIVATE KEY-----`
  assert.equal(run(`see ${encrypted} here`).text, 'see [SECRET] here')
})

test('a truncated one-line PEM block gives the prose after it back', () => {
  const out = run(
    '-----BEGIN PRIVATE KEY----- MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6 sorry it got cut off',
  )
  assert.equal(out.text, '[SECRET] sorry it got cut off')
})

test('prefixes inside words and short look-alikes are not secrets', () => {
  for (const text of ['task-force-sk-12', 'the sk-1 model', 'AKIA is a prefix', 'ghp_short', 'eyJ is base64 for {"']) {
    assert.equal(run(text).counts.secret, undefined, text)
  }
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEFAULT_ENTROPY_THRESHOLDS, looksRandom, shannonEntropy } from '../../../src/governance/redact/high-entropy.ts'
import { run } from './helpers.ts'

test('Shannon entropy', () => {
  assert.equal(shannonEntropy('aaaa', 0, 4), 0)
  assert.equal(shannonEntropy('abcd', 0, 4), 2)
  assert.equal(shannonEntropy('xxabxx', 2, 4), 1)
})

test('random base64, alphanumeric and long hex tokens are masked', () => {
  for (const value of [
    'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'q8Zr2LmX9vT4kPw7Nc1Hd6Ys3Bf5Gj0A',
    'Tz4xK9mQ2vR7nW1pL8sF3hJ6dC0bY5aE+g/Q==',
    '4f9c2a7e1b8d3f6a0c5e9b2d7f4a1c8e6b3d0f5a2c9e7b4d1f8a6c3e0b5d2f9a',
  ]) {
    const out = run(`secret is ${value} ok`)
    assert.equal(out.text, 'secret is [SECRET] ok', value)
    assert.deepEqual(out.counts, { high_entropy: 1 })
  }
  assert.equal(run('api_key=q8Zr2LmX9vT4kPw7Nc1Hd6Ys3Bf5Gj0A').text, 'api_key=[SECRET]')
})

test('words, identifiers, paths, UUIDs, short hashes and named content hashes are not secrets', () => {
  for (const text of [
    'MyCustomerServiceImplementation2',
    'report_final_v2_2026_q4_export_all',
    'https://docs.example.com/billing/refunds-and-credits',
    '/var/log/checkout-api/2026-11-25/error.log',
    'job 3f2a9c1e-7b4d-4e8a-9f1c-2d3e4f5a6b7c failed',
    'build a1b2c3d broke',
    'commit 4f9c2a7e1b8d3f6a0c5e9b2d7f4a1c8e6b3d0f5a',
    'sha256: 4f9c2a7e1b8d3f6a0c5e9b2d7f4a1c8e6b3d0f5a2c9e7b4d1f8a6c3e0b5d2f9a',
    'ERR_CONNECTION_RESET_BY_PEER_AFTER_TIMEOUT',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1A',
  ]) {
    assert.deepEqual(run(text).counts, {}, text)
  }
})

test('thresholds: a too-short token never counts, whatever its entropy', () => {
  const t = 'aZ3kQ9xW2mP7nB4v'
  assert.equal(looksRandom(t, 0, t.length, DEFAULT_ENTROPY_THRESHOLDS), false)
  assert.equal(looksRandom(t, 0, t.length, { ...DEFAULT_ENTROPY_THRESHOLDS, minLength: 12 }), true)
})

test('a secret joined to words by - _ or / is judged as its own segment', () => {
  const hex = '95ba10d89bdc108c5325a3a4cc664ca4387efe2a1457f85c924e72bd39594bb9'
  assert.equal(run(`key ${hex}-prod`).text, 'key [SECRET]-prod')
  assert.equal(run(`https://example.com/hooks/${hex}/`).text, 'https://example.com/hooks/[SECRET]/')
  assert.deepEqual(run('max_connections_per_host_and_per_route_limit').counts, {})
})

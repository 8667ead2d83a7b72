import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('IPv4 addresses are masked', () => {
  for (const value of ['192.168.1.20', '10.0.0.1', '8.8.8.8', '255.255.255.255', '0.0.0.0']) {
    const out = run(`from ${value}, blocked`)
    assert.equal(out.text, 'from [IPV4], blocked', value)
    assert.deepEqual(out.counts, { ipv4: 1 })
  }
  assert.equal(run('host 10.1.2.3:8080 and 10.1.2.4/24').text, 'host [IPV4]:8080 and [IPV4]/24')
})

test('out-of-range octets, longer dotted numbers and versions are not addresses', () => {
  for (const text of [
    '256.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    'driver version 10.2.0.114',
    'build 1.4.2.7',
    'v1.2.3.4',
  ]) {
    assert.equal(run(text).counts.ipv4, undefined, text)
  }
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('IPv6 addresses in full, compressed and IPv4-embedded forms are masked', () => {
  for (const value of [
    '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
    '2001:db8::8a2e:370:7334',
    'fe80::1ff:fe23:4567:890a',
    '::ffff:192.0.2.128',
    '2A02:1810:4D02:8A00::1',
  ]) {
    const out = run(`from ${value} at noon`)
    assert.equal(out.text, 'from [IPV6] at noon', value)
    assert.deepEqual(out.counts, { ipv6: 1 })
  }
})

test('a colon ending the sentence is not part of the address, a colon after a word is not either', () => {
  assert.equal(run('blocked 2001:db8::1: retry').text, 'blocked [IPV6]: retry')
  assert.equal(run('host:2001:db8::1 ip=fe80::1:2 [2001:db8::2]:443').text, 'host:[IPV6] ip=[IPV6] [[IPV6]]:443')
})

test('clock times, MAC addresses, C++ scopes and bare :: are not addresses', () => {
  for (const text of ['at 10:30:00', '00:1A:2B:3C:4D:5E', 'std::vector', 'Foo::Bar::baz', 'a :: b', '::1']) {
    assert.equal(run(text).counts.ipv6, undefined, text)
  }
})

test('a word glued on after a final dot or colon is the next sentence', () => {
  assert.equal(run('from fe80::3fa2:c210:c2b4:e540.Next').text, 'from [IPV6].Next')
  assert.equal(run('from 2A02:DC0E:E01:72F1::C8B2:end').text, 'from [IPV6]:end')
})

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeEntities, htmlToText, markdownToText } from '../../src/chunking/markup.ts'

test('HTML to text: blocks become paragraphs, scripts and tags vanish, entities decode', () => {
  const html = `<html><head><title>x</title><style>p{}</style></head><body>
    <h1>Reset&nbsp;a password</h1><p>Open <a href="/s">Settings</a> &amp; click <b>Reset</b>.<br>Then wait.</p>
    <script>alert(1)</script><ul><li>One</li><li>Two &#8211; &#x2713;</li></ul><!-- hidden --></body></html>`
  assert.equal(htmlToText(html), 'Reset a password\n\nOpen Settings & click Reset.\nThen wait.\n\n- One\n- Two – ✓')
})

test('Markdown to text: headings, links, emphasis, code and tables', () => {
  const md = [
    '# Reset a password',
    '',
    'Open **Settings** and click [Reset](https://x.example/reset) — see ![diagram](d.png).',
    'Keep snake_case_names and *emphasis* apart.',
    '',
    '```sh',
    'ragstream reset --all',
    '```',
    '',
    '| plan | price |',
    '|------|------:|',
    '| pro  | 10    |',
    '',
    '* item one',
    '> quoted `code`',
  ].join('\n')
  assert.equal(
    markdownToText(md),
    [
      'Reset a password',
      '',
      'Open Settings and click Reset — see diagram.',
      'Keep snake_case_names and emphasis apart.',
      '',
      'ragstream reset --all',
      '',
      'plan | price',
      'pro | 10',
      '',
      '- item one',
      'quoted code',
    ].join('\n'),
  )
})

test('unknown entities are kept', () => {
  assert.equal(decodeEntities('&bogus; &lt;b&gt; &#0;'), '&bogus; <b> &#0;')
})

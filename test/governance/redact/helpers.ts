import {
  buildRedactor,
  type RedactionConfig,
  type RedactionCounts,
  type Redactor,
} from '../../../src/governance/redact/redactor.ts'

/** A redactor with every built-in detector masking. */
export const maskAll: Redactor = buildRedactor({})

/** Redacts with `redactor` (default: mask everything) and returns the text and counts. */
export function run(text: string, redactor: Redactor = maskAll): { text: string; counts: RedactionCounts } {
  const counts: RedactionCounts = {}
  return { text: redactor.redactText(text, counts), counts }
}

export const TEST_KEY = 'test-key-0123456789abcdef0123456789abcdef'
export const OTHER_KEY = 'other-key-fedcba9876543210fedcba9876543210'

export function withKey(config: RedactionConfig, key = TEST_KEY): Redactor {
  return buildRedactor(config, { RAGSTREAM_PSEUDONYM_KEY: key })
}

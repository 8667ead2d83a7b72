/**
 * How chunk sizes are measured. `tokens` is an approximation (4 characters per token, the usual
 * rule of thumb for English with BPE tokenizers): good enough to stay under an embedding model's
 * input limit with a margin, not an exact count for a given tokenizer.
 */
export type SizeUnit = 'chars' | 'tokens'

export const CHARS_PER_TOKEN = 4

/** Approximate token count of a text (never 0 for non-empty text). */
export function approxTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN)
}

/** Size of a piece in the unit; fractional for tokens, so sums of pieces do not over-count. */
export function measure(unit: SizeUnit): (text: string) => number {
  return unit === 'chars' ? (text) => text.length : (text) => text.length / CHARS_PER_TOKEN
}

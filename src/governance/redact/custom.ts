import type { Problem } from '../../errors.ts'
import type { Detector } from './detector.ts'

/** A user-declared pattern, e.g. internal employee ids: `{ name: 'employee_id', pattern: /\bEMP-\d{6}\b/ }`. */
export interface CustomPattern {
  /** Count key and pseudonym domain; lower-case letters, digits and `_`. */
  readonly name: string
  /** A RegExp or its source. Flags other than `i`, `m`, `s`, `u` are ignored; `g` is added. */
  readonly pattern: RegExp | string
  /** Mask label; defaults to the upper-cased name. */
  readonly label?: string
}

const NAME = /^[a-z][a-z0-9_]{0,62}$/
const LABEL = /^[A-Z][A-Z0-9_]{0,31}$/
// A group that ends in a quantifier and is itself quantified — `(a+)+`, `(\w*)*`, `(x{1,9}){2,}` —
// is the classic shape of catastrophic backtracking. A heuristic, not a proof: see docs/governance.md.
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*(?:[+*]|\})\??\)(?:[+*]|\{\d+,\d*\})/

/** Validates a custom pattern and turns it into a detector; problems are appended with their paths. */
export function customDetector(spec: CustomPattern, path: string, problems: Problem[]): Detector | undefined {
  const start = problems.length
  if (typeof spec !== 'object' || spec === null) {
    problems.push({ path, message: 'must be an object { name, pattern, label? }' })
    return undefined
  }
  if (typeof spec.name !== 'string' || !NAME.test(spec.name)) {
    problems.push({
      path: `${path}/name`,
      message: 'required: lower-case letters, digits and _ (starting with a letter), at most 63 characters',
    })
  }
  if (spec.label !== undefined && (typeof spec.label !== 'string' || !LABEL.test(spec.label))) {
    problems.push({ path: `${path}/label`, message: 'must be upper-case letters, digits and _, at most 32 characters' })
  }
  let regex: RegExp | undefined
  if (spec.pattern instanceof RegExp || typeof spec.pattern === 'string') {
    const source = spec.pattern instanceof RegExp ? spec.pattern.source : spec.pattern
    const flags = spec.pattern instanceof RegExp ? spec.pattern.flags.replace(/[^imsu]/g, '') : ''
    try {
      regex = new RegExp(source, `${flags}g`)
    } catch (error) {
      problems.push({ path: `${path}/pattern`, message: `does not compile: ${(error as Error).message}` })
    }
    if (regex !== undefined) {
      if (new RegExp(`^(?:${source})$`, flags).test('')) {
        problems.push({ path: `${path}/pattern`, message: 'matches the empty string' })
      }
      if (NESTED_QUANTIFIER.test(source)) {
        problems.push({
          path: `${path}/pattern`,
          message:
            'has a quantified group that ends in a quantifier (catastrophic backtracking risk); make the repetition unambiguous',
        })
      }
    }
  } else {
    problems.push({ path: `${path}/pattern`, message: 'required: a RegExp or a pattern string' })
  }
  if (problems.length > start || regex === undefined) return undefined
  return { kind: spec.name, label: spec.label ?? spec.name.toUpperCase(), pattern: regex }
}

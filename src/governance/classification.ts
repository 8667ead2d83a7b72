import type { Problem } from '../errors.ts'

/** The default scale, lowest first. */
export const DEFAULT_CLASSIFICATION_LABELS = ['public', 'internal', 'confidential', 'restricted'] as const

const LABEL = /^[a-z][a-z0-9_-]{0,31}$/

/** An ordered set of classification labels, lowest (least sensitive) first. */
export class ClassificationScale {
  readonly labels: readonly string[]
  readonly #rank: ReadonlyMap<string, number>

  private constructor(labels: readonly string[]) {
    this.labels = Object.freeze([...labels])
    this.#rank = new Map(labels.map((label, i) => [label, i]))
  }

  /** Validates the labels (problems appended under `path`); undefined when invalid. */
  static of(labels: readonly string[] | undefined, path: string, problems: Problem[]): ClassificationScale | undefined {
    const list = labels ?? DEFAULT_CLASSIFICATION_LABELS
    if (!Array.isArray(list) || list.length === 0) {
      problems.push({ path, message: 'must be a non-empty array of labels, lowest first' })
      return undefined
    }
    const start = problems.length
    const seen = new Set<string>()
    list.forEach((label, i) => {
      if (typeof label !== 'string' || !LABEL.test(label))
        problems.push({
          path: `${path}/${i}`,
          message: 'must be a lower-case label (letters, digits, _ and -), at most 32 characters',
        })
      else if (seen.has(label)) problems.push({ path: `${path}/${i}`, message: `duplicates label ${label}` })
      seen.add(label)
    })
    return problems.length > start ? undefined : new ClassificationScale(list)
  }

  static readonly default: ClassificationScale = new ClassificationScale(DEFAULT_CLASSIFICATION_LABELS)

  /** Position on the scale (0 = lowest), or -1 for a label not on it. */
  rank(label: string): number {
    return this.#rank.get(label) ?? -1
  }

  has(label: unknown): label is string {
    return typeof label === 'string' && this.#rank.has(label)
  }

  /** Negative when `a` is less sensitive than `b`, 0 when equal, positive when more. */
  compare(a: string, b: string): number {
    return this.rank(a) - this.rank(b)
  }

  /** The more sensitive of two labels. */
  max(a: string, b: string): string {
    return this.rank(a) >= this.rank(b) ? a : b
  }

  /** Whether an output accepting at most `maximum` may hold data labelled `label`. */
  allows(maximum: string, label: string): boolean {
    const r = this.rank(label)
    return r !== -1 && r <= this.rank(maximum)
  }

  get highest(): string {
    return this.labels[this.labels.length - 1]
  }
}

import { ConfigError, type Problem } from '../../errors.ts'
import {
  contextualDetectors,
  JOINED_KIND,
  type JoinedKind,
  type JoinedValue,
  type RedactionContext,
} from './contextual.ts'
import { customDetector, type CustomPattern } from './custom.ts'
import { BUILT_IN_DETECTORS, type BuiltInDetectorKind, type Detector } from './detector.ts'
import { emailDetector } from './email.ts'
import { DEFAULT_ENTROPY_THRESHOLDS, highEntropyDetector, type EntropyThresholds } from './high-entropy.ts'
import { ibanDetector } from './iban.ts'
import { ipv4Detector } from './ipv4.ts'
import { ipv6Detector } from './ipv6.ts'
import { passwordDetector } from './password.ts'
import { paymentCardDetector } from './payment-card.ts'
import { phoneDetector } from './phone.ts'
import { DEFAULT_PSEUDONYM_KEY_ENV, Pseudonymiser } from './pseudonym.ts'
import { secretDetector } from './secret.ts'
import { TextView } from './normalise.ts'
import { usSsnDetector } from './us-ssn.ts'

export type { JoinedKind, JoinedValue, RedactionContext } from './contextual.ts'

/** What happens to a detected value: removed, replaced by `[LABEL]`, or by a keyed `[LABEL:hmac]`. */
export type RedactionAction = 'drop' | 'mask' | 'pseudonymise'
const ACTIONS: readonly string[] = ['drop', 'mask', 'pseudonymise']

/** A field rule: one of the actions on the whole value, `redact` (run the detectors), or `keep`. */
export type FieldAction = RedactionAction | 'redact' | 'keep'
const FIELD_ACTIONS: readonly string[] = [...ACTIONS, 'redact', 'keep']

export interface FieldRule {
  readonly action: FieldAction
  /** Mask / pseudonym label; defaults to `FIELD`. Use a detector's label (`EMAIL`) to share its pseudonyms. */
  readonly label?: string
}

/**
 * Redaction as configuration. Every built-in detector is on with `defaultAction` unless listed
 * otherwise; `false` turns one off.
 *
 * @example
 * ```ts
 * const redaction: RedactionConfig = {
 *   defaultAction: 'mask',
 *   detectors: { email: 'pseudonymise', ipv4: false },
 *   custom: [{ name: 'employee_id', pattern: /\bEMP-\d{6}\b/, action: 'mask' }],
 *   fields: { 'customer.email': 'pseudonymise', 'internal_notes': 'drop' },
 * }
 * ```
 */
export interface RedactionConfig {
  readonly defaultAction?: RedactionAction
  readonly detectors?: Partial<Readonly<Record<BuiltInDetectorKind, RedactionAction | false>>>
  readonly custom?: readonly (CustomPattern & { readonly action?: RedactionAction })[]
  /** Rules by dotted metadata path (`customer.email`); arrays take their field's rule per element. */
  readonly fields?: Readonly<Record<string, FieldAction | FieldRule>>
  /** Whether string metadata without a field rule is scanned by the detectors. Default `redact`. */
  readonly metadataStrings?: 'redact' | 'keep'
  /**
   * Dotted paths into the joined rows (the policy's `joined` metadata) whose values are personal and
   * are redacted wherever they occur in the text and metadata strings, by kind: `name`, `email`,
   * `phone` or `text` (or `{ kind, label }`). E.g. `{ 'customer.name': 'name', 'customer.email': 'email' }`.
   */
  readonly joined?: Readonly<Record<string, JoinedKind | JoinedRule>>
  /** Environment variable holding the HMAC key; read once, at build time. */
  readonly pseudonymKeyEnv?: string
  readonly entropy?: Partial<EntropyThresholds>
}

/** A `joined` path's kind of value and, optionally, its mask label. */
export interface JoinedRule {
  readonly kind: JoinedKind
  readonly label?: string
}

/** Values removed per detector kind (and per `field:<path>`); never the values themselves. */
export type RedactionCounts = Record<string, number>

export interface Redactor {
  /** Detector kinds in priority order: on overlapping matches the earlier kind wins. */
  readonly kinds: readonly string[]
  /**
   * Returns the redacted text and adds what it removed to `counts`. `context.joined` lists personal
   * values known from joined rows (a customer's name, e-mail, phone): they are redacted wherever they
   * occur, counted as `joined` (unless a detector found the same place first).
   *
   * @example
   * ```ts
   * redactor.redactText('Thanks, Jane Doe', counts, { joined: ['Jane Doe', 'jane@example.com'] })
   * // → 'Thanks, [NAME]'
   * ```
   */
  redactText(text: string, counts: RedactionCounts, context?: RedactionContext): string
  /** Applies field rules (and the detectors to other strings); returns the input itself when nothing changed. */
  redactMetadata(
    metadata: Readonly<Record<string, unknown>>,
    counts: RedactionCounts,
    context?: RedactionContext,
  ): Readonly<Record<string, unknown>>
  /**
   * The context of a record from its joined rows, by the config's `joined` paths (`customer.name`);
   * undefined when the config names none or none is present.
   */
  contextOf(joined: Readonly<Record<string, unknown>>): RedactionContext | undefined
}

const KNOWN_KEYS = new Set([
  'defaultAction',
  'detectors',
  'custom',
  'fields',
  'metadataStrings',
  'pseudonymKeyEnv',
  'entropy',
  'joined',
])
const JOINED_KINDS: readonly string[] = ['name', 'email', 'phone', 'text']
const FIELD_PATH = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/
const LABEL = /^[A-Z][A-Z0-9_]{0,31}$/
const ENTROPY_KEYS: readonly (keyof EntropyThresholds)[] = [
  'minLength',
  'minHexLength',
  'entropyRatio',
  'classChangeRatio',
]

type Environment = Readonly<Record<string, string | undefined>>

/** Builds a redactor, throwing one ConfigError that lists every problem with its path. */
export function buildRedactor(config: RedactionConfig = {}, env: Environment = process.env): Redactor {
  const problems: Problem[] = []
  const redactor = checkRedaction(config, '/redact', env, problems)
  if (problems.length > 0 || redactor === undefined) throw new ConfigError(problems, 'redaction config')
  return redactor
}

/** Validates `config` (problems appended under `path`) and, when it is valid, builds the redactor. */
export function checkRedaction(
  config: RedactionConfig,
  path: string,
  env: Environment,
  problems: Problem[],
): Redactor | undefined {
  const start = problems.length
  if (typeof config !== 'object' || config === null) {
    problems.push({ path, message: 'must be an object' })
    return undefined
  }
  for (const key of Object.keys(config)) {
    if (!KNOWN_KEYS.has(key))
      problems.push({ path: `${path}/${key}`, message: `unknown option (known: ${[...KNOWN_KEYS].join(', ')})` })
  }
  let defaultAction = config.defaultAction ?? 'mask'
  if (!ACTIONS.includes(defaultAction)) {
    problems.push({ path: `${path}/defaultAction`, message: `must be one of ${ACTIONS.join(', ')}` })
    defaultAction = 'mask' // reported once, here, not again for every detector
  }

  const entropy = { ...DEFAULT_ENTROPY_THRESHOLDS }
  if (config.entropy !== undefined) {
    for (const [key, value] of Object.entries(config.entropy)) {
      if (!(ENTROPY_KEYS as readonly string[]).includes(key))
        problems.push({
          path: `${path}/entropy/${key}`,
          message: `unknown threshold (known: ${ENTROPY_KEYS.join(', ')})`,
        })
      else if (typeof value !== 'number' || !(value > 0))
        problems.push({ path: `${path}/entropy/${key}`, message: 'must be a positive number' })
      else entropy[key as keyof EntropyThresholds] = value
    }
  }

  const builtIns: Record<BuiltInDetectorKind, Detector> = {
    secret: secretDetector,
    password: passwordDetector,
    iban: ibanDetector,
    payment_card: paymentCardDetector,
    us_ssn: usSsnDetector,
    email: emailDetector,
    ipv6: ipv6Detector,
    ipv4: ipv4Detector,
    phone: phoneDetector,
    high_entropy: highEntropyDetector(entropy),
  }
  const detectors: Detector[] = []
  const actions: RedactionAction[] = []
  const chosen = config.detectors ?? {}
  for (const kind of Object.keys(chosen)) {
    if (!(BUILT_IN_DETECTORS as readonly string[]).includes(kind)) {
      problems.push({
        path: `${path}/detectors/${kind}`,
        message: `unknown detector (known: ${BUILT_IN_DETECTORS.join(', ')})`,
      })
    }
  }
  // Custom patterns go after the checksum-verified detectors and before the entropy catch-all.
  const customs: { detector: Detector; action: RedactionAction }[] = []
  if (config.custom !== undefined) {
    if (!Array.isArray(config.custom)) problems.push({ path: `${path}/custom`, message: 'must be an array' })
    else {
      const names = new Set<string>(BUILT_IN_DETECTORS)
      config.custom.forEach((spec, i) => {
        const p = `${path}/custom/${i}`
        const detector = customDetector(spec, p, problems)
        const action = spec?.action ?? defaultAction
        if (!ACTIONS.includes(action))
          problems.push({ path: `${p}/action`, message: `must be one of ${ACTIONS.join(', ')}` })
        if (detector !== undefined) {
          if (names.has(detector.kind))
            problems.push({ path: `${p}/name`, message: `duplicates detector name ${detector.kind}` })
          names.add(detector.kind)
          customs.push({ detector, action })
        }
      })
    }
  }
  for (const kind of BUILT_IN_DETECTORS) {
    if (kind === 'high_entropy') {
      for (const c of customs) {
        detectors.push(c.detector)
        actions.push(c.action)
      }
    }
    const action = chosen[kind] ?? defaultAction
    if (action === false) continue
    if (!ACTIONS.includes(action)) {
      problems.push({ path: `${path}/detectors/${kind}`, message: `must be one of ${ACTIONS.join(', ')} or false` })
      continue
    }
    detectors.push(builtIns[kind])
    actions.push(action)
  }

  const fieldRules = new Map<string, FieldRule>()
  if (config.fields !== undefined) {
    if (typeof config.fields !== 'object' || config.fields === null)
      problems.push({ path: `${path}/fields`, message: 'must be an object of path → rule' })
    else {
      for (const [field, raw] of Object.entries(config.fields)) {
        const p = `${path}/fields/${field}`
        const rule: FieldRule = typeof raw === 'string' ? { action: raw } : raw
        if (!FIELD_PATH.test(field))
          problems.push({ path: p, message: 'must be a dotted field path such as customer.email' })
        if (typeof rule !== 'object' || rule === null || !FIELD_ACTIONS.includes(rule.action)) {
          problems.push({ path: p, message: `must be one of ${FIELD_ACTIONS.join(', ')} (or { action, label })` })
          continue
        }
        if (rule.label !== undefined && (typeof rule.label !== 'string' || !LABEL.test(rule.label))) {
          problems.push({
            path: `${p}/label`,
            message: 'must be upper-case letters, digits and _, at most 32 characters',
          })
        }
        fieldRules.set(field, rule)
      }
    }
  }
  const joinedRules = new Map<string, JoinedRule>()
  if (config.joined !== undefined) {
    if (typeof config.joined !== 'object' || config.joined === null || Array.isArray(config.joined))
      problems.push({ path: `${path}/joined`, message: 'must be an object of joined path → kind' })
    else {
      for (const [field, raw] of Object.entries(config.joined)) {
        const p = `${path}/joined/${field}`
        const rule: JoinedRule = typeof raw === 'string' ? { kind: raw } : raw
        if (!FIELD_PATH.test(field))
          problems.push({ path: p, message: 'must be a dotted field path such as customer.name' })
        if (typeof rule !== 'object' || rule === null || !JOINED_KINDS.includes(rule.kind)) {
          problems.push({ path: p, message: `must be one of ${JOINED_KINDS.join(', ')} (or { kind, label })` })
          continue
        }
        if (rule.label !== undefined && (typeof rule.label !== 'string' || !LABEL.test(rule.label)))
          problems.push({
            path: `${p}/label`,
            message: 'must be upper-case letters, digits and _, at most 32 characters',
          })
        joinedRules.set(field, rule)
      }
    }
  }
  const metadataStrings = config.metadataStrings ?? 'redact'
  if (metadataStrings !== 'redact' && metadataStrings !== 'keep')
    problems.push({ path: `${path}/metadataStrings`, message: 'must be redact or keep' })

  let pseudonymiser: Pseudonymiser | undefined
  const needsKey = actions.includes('pseudonymise') || [...fieldRules.values()].some((r) => r.action === 'pseudonymise')
  if (needsKey) {
    pseudonymiser = Pseudonymiser.fromEnvironment(
      config.pseudonymKeyEnv ?? DEFAULT_PSEUDONYM_KEY_ENV,
      env,
      `${path}/pseudonymKeyEnv`,
      problems,
    )
  }
  if (problems.length > start) return undefined
  return new CompiledRedactor(
    detectors,
    actions,
    fieldRules,
    joinedRules,
    defaultAction,
    metadataStrings === 'redact',
    pseudonymiser,
  )
}

const DETECTOR_BY_LABEL = new Map<string, Detector>(
  [emailDetector, phoneDetector, paymentCardDetector, ibanDetector, usSsnDetector, ipv4Detector, ipv6Detector].map(
    (d) => [d.label, d],
  ),
)

class CompiledRedactor implements Redactor {
  readonly kinds: readonly string[]
  readonly #detectors: readonly Detector[]
  readonly #actions: readonly RedactionAction[]
  readonly #fields: ReadonlyMap<string, FieldRule>
  readonly #joined: ReadonlyMap<string, JoinedRule>
  readonly #defaultAction: RedactionAction
  readonly #scanMetadata: boolean
  readonly #pseudonymiser: Pseudonymiser | undefined
  // The normalised and the joined view of the text being redacted and its findings: reused across
  // calls, so a redaction allocates little beyond its output.
  readonly #view = new TextView()
  readonly #joinedView = new TextView()
  readonly #valueView = new TextView()
  readonly #findings = new Spans()
  #order: number[] = []
  // The detector being run, its view and (joined view) the number of plain findings: fields, so
  // the callback below is allocated once, not per detector and text.
  // Per detector, its plain-view findings sorted by start with the running maximum of their ends:
  // whether a joined-view finding overlaps one is then a binary search, whatever their number.
  #plainStarts: number[][] = []
  #plainMaxEnds: number[][] = []
  #scanning = 0
  #scanView = this.#view
  #plainEnd = -1
  readonly #found = (start: number, end: number): void => {
    const view = this.#scanView
    const plainEnd = this.#plainEnd
    const d = this.#scanning
    if (plainEnd >= 0 && !view.crossesJoin(start, end)) return
    const s = view.originalStart(start)
    const e = view.originalEnd(end)
    if (plainEnd >= 0 && this.#plainOverlap(d, s, e)) return
    this.#findings.push(s, e, d)
  }

  constructor(
    detectors: Detector[],
    actions: RedactionAction[],
    fields: Map<string, FieldRule>,
    joined: Map<string, JoinedRule>,
    defaultAction: RedactionAction,
    scanMetadata: boolean,
    pseudonymiser: Pseudonymiser | undefined,
  ) {
    this.#detectors = detectors
    this.#actions = actions
    this.#fields = fields
    this.#joined = joined
    this.#defaultAction = defaultAction
    this.#scanMetadata = scanMetadata
    this.#pseudonymiser = pseudonymiser
    this.kinds = detectors.map((d) => d.kind)
  }

  redactText(text: string, counts: RedactionCounts, context?: RedactionContext): string {
    if (text.length === 0) return text
    const contextual = contextualDetectors(context)
    const detectors = contextual.length === 0 ? this.#detectors : [...this.#detectors, ...contextual]
    const findings = this.#findings
    findings.clear()
    const view = this.#view.build(text, false)
    for (let d = 0; d < detectors.length; d++) this.#scan(detectors[d], d, view, -1)
    if (view.joinable) {
      // Values wrapped inside a token (`AKIA…\n…`, `anna@\nexample.com`): findings of the joined
      // view count when they cross a removed break and no finding of the same detector already
      // covers that place.
      const plain = findings.length
      this.#indexPlain(detectors.length)
      const joined = this.#joinedView.build(text, true)
      for (let d = 0; d < detectors.length; d++) this.#scan(detectors[d], d, joined, plain)
    }
    if (findings.length === 0) return text
    // Overlapping findings merge into one span, labelled by the highest-priority detector among
    // them: a value is masked whole, never in parts ("fr56 4215 1021 [PHONE] 744").
    const order = this.#order
    order.length = findings.length
    for (let i = 0; i < findings.length; i++) order[i] = i
    order.sort((a, b) => findings.starts[a] - findings.starts[b] || findings.which[a] - findings.which[b])
    let out = ''
    let last = 0
    let k = 0
    while (k < order.length) {
      const first = order[k++]
      const start = findings.starts[first]
      let end = findings.ends[first]
      let which = findings.which[first]
      while (k < order.length && findings.starts[order[k]] < end) {
        const next = order[k++]
        if (findings.ends[next] > end) end = findings.ends[next]
        if (findings.which[next] < which) which = findings.which[next]
      }
      const detector = detectors[which]
      const action = which < this.#actions.length ? this.#actions[which] : this.#defaultAction
      out += text.slice(last, start)
      out += this.#replacement(action, detector, text.slice(start, end))
      last = end
      counts[detector.kind] = (counts[detector.kind] ?? 0) + 1
    }
    return out + text.slice(last)
  }

  #indexPlain(detectors: number): void {
    const f = this.#findings
    const order: number[] = []
    for (let i = 0; i < f.length; i++) order.push(i)
    order.sort((a, b) => f.which[a] - f.which[b] || f.starts[a] - f.starts[b])
    for (let d = 0; d < detectors; d++) {
      ;(this.#plainStarts[d] ??= []).length = 0
      ;(this.#plainMaxEnds[d] ??= []).length = 0
    }
    for (const i of order) {
      const starts = this.#plainStarts[f.which[i]]
      const ends = this.#plainMaxEnds[f.which[i]]
      starts.push(f.starts[i])
      ends.push(Math.max(f.ends[i], ends.length > 0 ? ends[ends.length - 1] : 0))
    }
  }

  #plainOverlap(d: number, s: number, e: number): boolean {
    const starts = this.#plainStarts[d]
    let lo = 0
    let hi = starts.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (starts[mid] < e) lo = mid + 1
      else hi = mid
    }
    // Findings [0, lo) start before `e`; one of them overlaps when the furthest end passes `s`.
    return lo > 0 && this.#plainMaxEnds[d][lo - 1] > s
  }

  /**
   * Runs one detector over a view and records its findings in original positions. With `plainEnd`
   * ≥ 0 the view is the joined one: only findings that cross a removed break and do not overlap a
   * finding of the same detector among the first `plainEnd` count.
   */
  #scan(detector: Detector, d: number, view: TextView, plainEnd: number): void {
    const text = view.text
    if (detector.mayOccur !== undefined && !detector.mayOccur(text)) return
    this.#scanning = d
    this.#scanView = view
    this.#plainEnd = plainEnd
    const found = this.#found
    if (detector.scan !== undefined) {
      detector.scan(text, found)
      return
    }
    const pattern = detector.pattern as RegExp
    pattern.lastIndex = 0
    let match: RegExpExecArray | null
    while ((match = pattern.exec(text)) !== null) {
      const start = match.index
      let end = start + match[0].length
      if (detector.verify !== undefined) end = detector.verify(text, start, end)
      if (end <= start) {
        // Not a value: look again from the next character, so a real value inside the rejected
        // candidate is still found (the lookbehinds keep this linear).
        pattern.lastIndex = start + 1
        continue
      }
      found(start, end)
    }
  }

  #replacement(action: RedactionAction, detector: Detector, value: string): string {
    if (action === 'drop') return ''
    if (action === 'mask' || this.#pseudonymiser === undefined) return `[${detector.label}]`
    // The canonical form is taken from the value's normalised view, so `%2B44%2020…`, `+44 20…` with
    // NBSPs and `+44 20 7946 0958` share a pseudonym.
    // Names keep the white space between their words (canonicalised by their normalize).
    const normalised = this.#valueView.build(value, detector.kind !== JOINED_KIND).text
    const canonical = detector.normalize === undefined ? normalised : detector.normalize(normalised)
    return this.#pseudonymiser.token(detector.label, canonical)
  }

  redactMetadata(
    metadata: Readonly<Record<string, unknown>>,
    counts: RedactionCounts,
    context?: RedactionContext,
  ): Readonly<Record<string, unknown>> {
    return this.#object(metadata, '', counts, context)
  }

  contextOf(joined: Readonly<Record<string, unknown>>): RedactionContext | undefined {
    if (this.#joined.size === 0 || joined === null || typeof joined !== 'object') return undefined
    const values: JoinedValue[] = []
    for (const [path, rule] of this.#joined) {
      let value: unknown = joined
      for (const key of path.split('.')) {
        if (value === null || typeof value !== 'object') {
          value = undefined
          break
        }
        value = Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined
      }
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'string' || typeof v === 'number')
          values.push({ value: String(v), kind: rule.kind, label: rule.label })
      }
    }
    return values.length === 0 ? undefined : { joined: values }
  }

  #object(
    value: Readonly<Record<string, unknown>>,
    prefix: string,
    counts: RedactionCounts,
    context: RedactionContext | undefined,
  ): Readonly<Record<string, unknown>> {
    let copy: Record<string, unknown> | undefined
    for (const key of Object.keys(value)) {
      const path = prefix === '' ? key : `${prefix}.${key}`
      const rule = this.#fields.get(path)
      const child = value[key]
      if (rule?.action === 'drop') {
        copy ??= { ...value }
        delete copy[key]
        counts[`field:${path}`] = (counts[`field:${path}`] ?? 0) + 1
        continue
      }
      const next = this.#value(child, path, rule, counts, context)
      if (next !== child) {
        copy ??= { ...value }
        // Defined, not assigned: a JSON key `__proto__` must stay a field, not reach the setter.
        Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true })
      }
    }
    return copy ?? value
  }

  #value(
    value: unknown,
    path: string,
    rule: FieldRule | undefined,
    counts: RedactionCounts,
    context: RedactionContext | undefined,
  ): unknown {
    if (value === null || value === undefined) return value
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined
      for (let i = 0; i < value.length; i++) {
        const next = this.#value(value[i], path, rule, counts, context)
        if (next !== value[i]) (copy ??= value.slice())[i] = next
      }
      return copy ?? value
    }
    const action = rule?.action
    if (action === 'mask' || action === 'pseudonymise') {
      counts[`field:${path}`] = (counts[`field:${path}`] ?? 0) + 1
      const label = rule?.label ?? 'FIELD'
      if (action === 'mask' || this.#pseudonymiser === undefined) return `[${label}]`
      const raw = typeof value === 'object' ? JSON.stringify(value) : String(value)
      const detector = DETECTOR_BY_LABEL.get(label)
      return this.#pseudonymiser.token(label, detector?.normalize === undefined ? raw : detector.normalize(raw))
    }
    if (typeof value === 'string') {
      if (action === 'keep' || (action === undefined && !this.#scanMetadata)) return value
      return this.redactText(value, counts, context)
    }
    if (typeof value === 'object' && action !== 'keep')
      return this.#object(value as Record<string, unknown>, path, counts, context)
    return value
  }
}

/** Parallel arrays of [start, end) spans with the index of the detector that found each. */
class Spans {
  readonly starts: number[] = []
  readonly ends: number[] = []
  readonly which: number[] = []
  length = 0

  push(start: number, end: number, which: number): void {
    this.starts[this.length] = start
    this.ends[this.length] = end
    this.which[this.length] = which
    this.length++
  }

  clear(): void {
    this.length = 0
  }
}

/** Convenience for one text: the redacted text and what was removed. */
export function redactText(
  redactor: Redactor,
  text: string,
  context?: RedactionContext,
): { text: string; counts: RedactionCounts } {
  const counts: RedactionCounts = {}
  return { text: redactor.redactText(text, counts, context), counts }
}

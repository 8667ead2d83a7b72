/**
 * Governance policies as code: what may be indexed, how sensitive it is, what is removed from it,
 * where it may live, and whom it is about. A policy is declared once, versioned, validated once at
 * build time into one ConfigError listing every problem with its path, and compiled into a pure
 * per-record `govern` function that the topology's govern operator calls.
 */
import { ConfigError, RagstreamError, type Problem } from '../errors.ts'
import { auditEvent, type AuditEventValue } from './audit.ts'
import { ClassificationScale } from './classification.ts'
import { checkRedaction, type RedactionConfig, type RedactionCounts, type Redactor } from './redact/redactor.ts'
import { hashId, hashSubject, isSubject } from './subject.ts'

/** The record as the govern operator sees it, after decoding and joins. */
export interface GovernRecord {
  /** Entity key, e.g. `ticket:981`; audit events carry only its sha256. */
  readonly key: string
  /** The document text that will be chunked and embedded. */
  readonly text: string
  /** The record's metadata (what the joiner put there); indexed as jsonb after redaction. */
  readonly metadata: Readonly<Record<string, unknown>>
  /** Source change time in ms (Debezium `ts_ms`, else the Kafka record timestamp). */
  readonly timestampMs: number
}

/** Rows joined to the record (e.g. its customer), for decisions; not indexed by govern. */
export type JoinedMetadata = Readonly<Record<string, unknown>>

export type PolicyFunction<T> = (record: GovernRecord, joined: JoinedMetadata) => T

export interface DenyRule {
  /** Stable rule name: the audit identity of the denial. */
  readonly name: string
  /** Why: goes into the audit event, so it must not contain data. */
  readonly reason: string
  readonly when: PolicyFunction<boolean>
}

/** A region name from `outputs`, or a denial with its reason. */
export type ResidencyDecision = string | { readonly deny: string }

export interface PolicyOutput {
  /** The most sensitive label this output (its topic and tables) may hold. Default: the highest label. */
  readonly maxClassification?: string
}

/**
 * A governance policy.
 *
 * @example
 * ```ts
 * export const supportPolicy = definePolicy({
 *   name: 'support',
 *   version: '3',
 *   deny: [{ name: 'no-consent', reason: 'customer withdrew consent', when: (_r, c) => c.consent === false }],
 *   classify: (_r, c) => (c.tier === 'vip' ? 'confidential' : 'internal'),
 *   outputs: { eu: { maxClassification: 'confidential' }, us: { maxClassification: 'internal' } },
 *   residency: (_r, c) => (c.region === 'EU' ? 'eu' : c.region === 'US' ? 'us' : { deny: 'no region' }),
 *   subjects: (_r, c) => [`customer:${c.id}`],
 *   redact: { detectors: { email: 'pseudonymise' }, fields: { 'customer.phone': 'drop' } },
 * })
 * ```
 */
export interface PolicyDefinition {
  /** Lower-case name, e.g. `support`. */
  readonly name: string
  /** Version recorded on every chunk the policy lets through, as `<name>@<version>`. */
  readonly version: string
  /** Classification scale, lowest first. Default: public < internal < confidential < restricted. */
  readonly labels?: readonly string[]
  readonly deny?: readonly DenyRule[]
  /** The record's label. Without it every record gets the highest label (fail closed). */
  readonly classify?: PolicyFunction<string>
  /** Outputs by region name. Default: one output `default` accepting every label. */
  readonly outputs?: Readonly<Record<string, PolicyOutput>>
  /** Which output a record goes to, or a denial. Required with more than one output. */
  readonly residency?: PolicyFunction<ResidencyDecision>
  /** The data subjects the record belongs to (`customer:42`); forgetting one removes the record. */
  readonly subjects?: PolicyFunction<readonly string[]>
  /** Redaction of the text and metadata. Default: every detector on, masking. */
  readonly redact?: RedactionConfig
}

export interface GovernEmit {
  readonly action: 'emit'
  readonly text: string
  readonly metadata: Readonly<Record<string, unknown>>
  readonly classification: string
  /** The output (region) the record goes to. */
  readonly region: string
  readonly subjects: readonly string[]
  /** `<name>@<version>`. */
  readonly policyVersion: string
  /** Values removed per detector (and `field:<path>`); empty when nothing was removed. */
  readonly redactionCounts: Readonly<RedactionCounts>
}

export interface GovernDeny {
  readonly action: 'deny'
  readonly reason: string
  /** The audit event value (kind DENIED): ids, hashes and the reason, never content. */
  readonly audit: AuditEventValue
}

export type GovernDecision = GovernEmit | GovernDeny

export interface CompiledPolicy {
  readonly name: string
  /** `<name>@<version>`. */
  readonly policyVersion: string
  readonly scale: ClassificationScale
  /** Output (region) name → the most sensitive label it accepts. */
  readonly outputs: ReadonlyMap<string, string>
  /**
   * Decides one record. Pure: same inputs, same decision (audit event ids included). Throws a
   * RagstreamError `RS_RECORD_INVALID` (for the dead-letter topic) when a policy function throws or
   * returns something invalid; the message names the function, never the record's content.
   */
  govern(record: GovernRecord, joined: JoinedMetadata, subjects?: readonly string[]): GovernDecision
  /** The REDACTED audit event of an emitted record (counts only), or undefined when nothing was removed. */
  redactionAudit(record: GovernRecord, emitted: GovernEmit): AuditEventValue | undefined
  /** The RECLASSIFIED audit event when a record's label changed from what its chunks carried. */
  reclassificationAudit(record: GovernRecord, subjects: readonly string[], from: string, to: string): AuditEventValue
  /**
   * Only the subjects, so the operator can check suppression before doing the rest; pass the result
   * to `govern` as its third argument to not compute them twice.
   */
  subjects(record: GovernRecord, joined: JoinedMetadata): readonly string[]
}

export interface CompileOptions {
  /** Topology name, recorded in audit events. */
  readonly topology: string
  readonly topologyVersion?: string
  /** Where the pseudonymisation key is read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Path prefix of problems; default `/policy`. */
  readonly path?: string
}

/** Declares a policy: returns it frozen, typed; validation happens in compilePolicy. */
export function definePolicy<const T extends PolicyDefinition>(definition: T): T {
  return Object.freeze(definition)
}

const NAME = /^[a-z][a-z0-9_-]{0,62}$/
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/
const KNOWN_KEYS = new Set([
  'name',
  'version',
  'labels',
  'deny',
  'classify',
  'outputs',
  'residency',
  'subjects',
  'redact',
])
const DEFAULT_OUTPUT = 'default'
const NO_SUBJECTS: readonly string[] = Object.freeze([])

/** Validates a policy and compiles its govern function; throws one ConfigError listing every problem. */
export function compilePolicy(definition: PolicyDefinition, options: CompileOptions): CompiledPolicy {
  const path = options.path ?? '/policy'
  const problems: Problem[] = []
  if (typeof definition !== 'object' || definition === null)
    throw new ConfigError([{ path, message: 'must be a policy object' }], 'policy')
  for (const key of Object.keys(definition)) {
    if (!KNOWN_KEYS.has(key))
      problems.push({ path: `${path}/${key}`, message: `unknown option (known: ${[...KNOWN_KEYS].join(', ')})` })
  }
  if (typeof definition.name !== 'string' || !NAME.test(definition.name))
    problems.push({
      path: `${path}/name`,
      message: 'required: lower-case letters, digits, _ and -, starting with a letter',
    })
  if (typeof definition.version !== 'string' || !VERSION.test(definition.version))
    problems.push({ path: `${path}/version`, message: 'required: 1–64 characters of letters, digits, ., _, : and -' })
  if (typeof options.topology !== 'string' || options.topology === '')
    problems.push({ path: '/topology/name', message: 'required to record audit events' })

  const scale = ClassificationScale.of(definition.labels, `${path}/labels`, problems)

  const deny = definition.deny ?? []
  if (!Array.isArray(deny))
    problems.push({ path: `${path}/deny`, message: 'must be an array of { name, reason, when }' })
  else {
    const names = new Set<string>()
    deny.forEach((rule, i) => {
      const p = `${path}/deny/${i}`
      if (typeof rule !== 'object' || rule === null)
        return void problems.push({ path: p, message: 'must be { name, reason, when }' })
      if (typeof rule.name !== 'string' || !NAME.test(rule.name))
        problems.push({ path: `${p}/name`, message: 'required: lower-case letters, digits, _ and -' })
      else if (names.has(rule.name)) problems.push({ path: `${p}/name`, message: `duplicates rule ${rule.name}` })
      else names.add(rule.name)
      if (typeof rule.reason !== 'string' || rule.reason.trim() === '' || rule.reason.length > 200)
        problems.push({
          path: `${p}/reason`,
          message: 'required: 1–200 characters (recorded in audit events; no data)',
        })
      if (typeof rule.when !== 'function')
        problems.push({ path: `${p}/when`, message: 'required: a predicate (record, joined) => boolean' })
    })
  }
  for (const fn of ['classify', 'residency', 'subjects'] as const) {
    if (definition[fn] !== undefined && typeof definition[fn] !== 'function')
      problems.push({ path: `${path}/${fn}`, message: 'must be a function (record, joined) => …' })
  }

  const outputs = new Map<string, string>()
  const declared = definition.outputs ?? { [DEFAULT_OUTPUT]: {} }
  if (typeof declared !== 'object' || declared === null || Object.keys(declared).length === 0) {
    problems.push({ path: `${path}/outputs`, message: 'must name at least one output (region)' })
  } else {
    for (const [region, output] of Object.entries(declared)) {
      const p = `${path}/outputs/${region}`
      if (!NAME.test(region))
        problems.push({ path: p, message: 'output names are lower-case letters, digits, _ and -' })
      const max = output?.maxClassification
      if (max !== undefined && scale !== undefined && !scale.has(max))
        problems.push({ path: `${p}/maxClassification`, message: `must be one of ${scale.labels.join(', ')}` })
      if (scale !== undefined) outputs.set(region, max ?? scale.highest)
    }
    if (Object.keys(declared).length > 1 && definition.residency === undefined)
      problems.push({
        path: `${path}/residency`,
        message: 'required when there is more than one output: it decides where each record goes',
      })
  }

  let redactor: Redactor | undefined
  if (definition.redact === undefined || (typeof definition.redact === 'object' && definition.redact !== null)) {
    redactor = checkRedaction(definition.redact ?? {}, `${path}/redact`, options.env ?? process.env, problems)
  } else problems.push({ path: `${path}/redact`, message: 'must be a redaction config object' })

  if (problems.length > 0 || scale === undefined || redactor === undefined) throw new ConfigError(problems, 'policy')
  return new Policy(definition, options, scale, outputs, redactor)
}

class Policy implements CompiledPolicy {
  readonly name: string
  readonly policyVersion: string
  readonly scale: ClassificationScale
  readonly outputs: ReadonlyMap<string, string>
  readonly #deny: readonly DenyRule[]
  readonly #classify: PolicyFunction<string> | undefined
  readonly #residency: PolicyFunction<ResidencyDecision> | undefined
  readonly #subjects: PolicyFunction<readonly string[]> | undefined
  readonly #redactor: Redactor
  readonly #topology: string
  readonly #topologyVersion: string | null
  readonly #onlyOutput: string | undefined
  readonly #path: string

  constructor(
    definition: PolicyDefinition,
    options: CompileOptions,
    scale: ClassificationScale,
    outputs: Map<string, string>,
    redactor: Redactor,
  ) {
    this.name = definition.name
    this.policyVersion = `${definition.name}@${definition.version}`
    this.scale = scale
    this.outputs = outputs
    this.#deny = Object.freeze([...(definition.deny ?? [])])
    this.#classify = definition.classify
    this.#residency = definition.residency
    this.#subjects = definition.subjects
    this.#redactor = redactor
    this.#topology = options.topology
    this.#topologyVersion = options.topologyVersion ?? null
    this.#onlyOutput = outputs.size === 1 ? outputs.keys().next().value : undefined
    this.#path = options.path ?? '/policy'
  }

  subjects(record: GovernRecord, joined: JoinedMetadata): readonly string[] {
    if (this.#subjects === undefined) return NO_SUBJECTS
    const subjects = this.#call('subjects', this.#subjects, record, joined)
    if (!Array.isArray(subjects)) throw this.#invalid('subjects', 'did not return an array of subjects')
    for (let i = 0; i < subjects.length; i++) {
      if (!isSubject(subjects[i]))
        throw this.#invalid(
          'subjects',
          `returned an invalid subject at index ${i} (expected <type>:<id>, e.g. customer:42)`,
        )
    }
    return subjects
  }

  govern(
    record: GovernRecord,
    joined: JoinedMetadata,
    subjects: readonly string[] = this.subjects(record, joined),
  ): GovernDecision {
    for (let i = 0; i < this.#deny.length; i++) {
      const rule = this.#deny[i]
      if (this.#call(`deny/${i}/when`, rule.when, record, joined) === true)
        return this.#denied(record, subjects, rule.reason, `deny:${rule.name}`)
    }

    let classification: string
    if (this.#classify === undefined) classification = this.scale.highest
    else {
      const label = this.#call('classify', this.#classify, record, joined)
      if (!this.scale.has(label))
        throw this.#invalid('classify', `returned a label that is not on the scale (${this.scale.labels.join(' < ')})`)
      classification = label
    }

    let region: string
    if (this.#residency === undefined) region = this.#onlyOutput as string
    else {
      const decision = this.#call('residency', this.#residency, record, joined)
      if (typeof decision === 'object' && decision !== null && typeof decision.deny === 'string') {
        return this.#denied(record, subjects, `residency: ${decision.deny}`, 'residency')
      }
      if (typeof decision !== 'string' || !this.outputs.has(decision))
        throw this.#invalid(
          'residency',
          `returned neither an output (${[...this.outputs.keys()].join(', ')}) nor { deny: reason }`,
        )
      region = decision
    }

    const maximum = this.outputs.get(region) as string
    if (!this.scale.allows(maximum, classification)) {
      return this.#denied(
        record,
        subjects,
        `classification ${classification} exceeds ${maximum}, the maximum of output ${region}`,
        'classification',
      )
    }

    const redactionCounts: RedactionCounts = {}
    // The joined rows' personal values (`redact.joined`: customer name, e-mail, phone) are redacted
    // wherever the text or metadata repeats them.
    const context = this.#redactor.contextOf(joined)
    const text = this.#redactor.redactText(record.text, redactionCounts, context)
    const metadata = this.#redactor.redactMetadata(record.metadata, redactionCounts, context)
    return {
      action: 'emit',
      text,
      metadata,
      classification,
      region,
      subjects,
      policyVersion: this.policyVersion,
      redactionCounts,
    }
  }

  redactionAudit(record: GovernRecord, emitted: GovernEmit): AuditEventValue | undefined {
    let any = false
    for (const _ in emitted.redactionCounts) {
      any = true
      break
    }
    if (!any) return undefined
    return auditEvent({
      kind: 'REDACTED',
      topology: this.#topology,
      topologyVersion: this.#topologyVersion,
      subjectHash: emitted.subjects.length > 0 ? hashSubject(emitted.subjects[0]) : null,
      entityKeyHash: hashId(record.key),
      counts: emitted.redactionCounts,
      atMs: record.timestampMs,
      identity: `${this.policyVersion}\u0000redacted\u0000${record.timestampMs}`,
    })
  }

  reclassificationAudit(record: GovernRecord, subjects: readonly string[], from: string, to: string): AuditEventValue {
    return auditEvent({
      kind: 'RECLASSIFIED',
      topology: this.#topology,
      topologyVersion: this.#topologyVersion,
      subjectHash: subjects.length > 0 ? hashSubject(subjects[0]) : null,
      entityKeyHash: hashId(record.key),
      // Labels are policy vocabulary, not data: the scale validated them at build time.
      reason: `${this.scale.has(from) ? from : 'unknown'} -> ${this.scale.has(to) ? to : 'unknown'}`,
      counts: { from: this.scale.rank(from), to: this.scale.rank(to) },
      atMs: record.timestampMs,
      identity: `${this.policyVersion}\u0000reclassified\u0000${from}\u0000${to}\u0000${record.timestampMs}`,
    })
  }

  #denied(record: GovernRecord, subjects: readonly string[], reason: string, rule: string): GovernDeny {
    const audit = auditEvent({
      kind: 'DENIED',
      topology: this.#topology,
      topologyVersion: this.#topologyVersion,
      subjectHash: subjects.length > 0 ? hashSubject(subjects[0]) : null,
      entityKeyHash: hashId(record.key),
      reason,
      counts: { subjects: subjects.length },
      atMs: record.timestampMs,
      identity: `${this.policyVersion}\u0000${rule}\u0000${record.timestampMs}`,
    })
    return { action: 'deny', reason, audit }
  }

  #call<T>(name: string, fn: PolicyFunction<T>, record: GovernRecord, joined: JoinedMetadata): T {
    try {
      return fn(record, joined)
    } catch (error) {
      // The thrown message may quote the record; only its class name is kept.
      throw this.#invalid(name, `threw ${error instanceof Error ? error.name : typeof error}`)
    }
  }

  #invalid(name: string, what: string): RagstreamError {
    return new RagstreamError('RS_RECORD_INVALID', `policy ${this.policyVersion}: ${name} ${what}`, {
      context: { path: `${this.#path}/${name}`, node: 'govern' },
    })
  }
}

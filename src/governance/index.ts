// The governance building blocks the `govern` operator wraps (docs/governance.md): policies compiled
// into a pure govern(), redaction, subject hashing, audit values, and the forgetting primitives.
export { compilePolicy, definePolicy } from './policy.ts'
export type {
  CompiledPolicy,
  CompileOptions,
  DenyRule,
  GovernDecision,
  GovernDeny,
  GovernEmit,
  GovernRecord,
  JoinedMetadata,
  PolicyDefinition,
  PolicyOutput,
  ResidencyDecision,
} from './policy.ts'
export { ClassificationScale, DEFAULT_CLASSIFICATION_LABELS } from './classification.ts'
export { buildRedactor, redactText } from './redact/redactor.ts'
export type {
  FieldAction,
  FieldRule,
  RedactionAction,
  RedactionConfig,
  RedactionCounts,
  Redactor,
  JoinedKind,
  JoinedRule,
  JoinedValue,
  RedactionContext,
} from './redact/redactor.ts'
export { BUILT_IN_DETECTORS } from './redact/detector.ts'
export type { BuiltInDetectorKind } from './redact/detector.ts'
export type { CustomPattern } from './redact/custom.ts'
export { DEFAULT_PSEUDONYM_KEY_ENV } from './redact/pseudonym.ts'
export { hashId, hashSubject, isSubject, SUBJECT_PATTERN } from './subject.ts'
export { AUDIT_KINDS, auditEvent } from './audit.ts'
export type { AuditEventInput, AuditEventValue, AuditKind } from './audit.ts'
export { buildDeletionRequest } from './forget/deletion-request.ts'
export { deletionAppliedAudit, deletionRequestedAudit } from './forget/deletion-audit.ts'
export type { DeletionApplied } from './forget/deletion-audit.ts'
export type { DeletionRequestInput, DeletionRequestValue } from './forget/deletion-request.ts'
export {
  decodeSuppression,
  effectiveMode,
  encodeSuppression,
  findSuppression,
  mergeSuppression,
  subjectHashes,
  suppressionFromRequest,
  suppresses,
} from './forget/suppression.ts'
export type { SuppressionMode, SuppressionRecord } from './forget/suppression.ts'
export { formatReceipt, receiptAuditEvent, receiptJson, verificationQuery } from './forget/receipt.ts'
export type { ForgetReceipt, VerificationQuery } from './forget/receipt.ts'
export { DEAD_LETTER_TOPIC_CONFIG, deadLetterExpiryMs, deadLetterRetentionOf } from './forget/dead-letter.ts'
export type { DeadLetterRetention } from './forget/dead-letter.ts'

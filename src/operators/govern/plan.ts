/** What a govern node needs per batch, resolved once at compile time (./index.ts). */
import type { TailServices } from '../../config/rag-services.ts'
import type { SuppressionMode } from '../../governance/forget/suppression.ts'
import type { CompiledPolicy } from '../../governance/policy.ts'
import type { ContributionTable, SpineJoin } from './coverage.ts'
import type { AuditOutput, DeletionRequestDecoder, ForgetOptions, GovernNodeOptions } from './options.ts'

export interface GovernPlan {
  readonly name: string
  readonly app: string
  readonly topologyVersion: string | undefined
  readonly partitions: number
  readonly policy: CompiledPolicy
  readonly options: GovernNodeOptions
  readonly audit: AuditOutput
  /** Opened before the batch's first I/O (idempotent); undefined when compiled without services. */
  readonly services: TailServices | undefined
  readonly mode: SuppressionMode
  readonly decoder: DeletionRequestDecoder
  /** The forgotten-subjects store; undefined without `forget`. */
  readonly forgottenStore: string | undefined
  readonly indexStore: string
  readonly entityStores: readonly string[]
  readonly subjectStores: readonly (readonly [string, (subject: string) => string | null])[]
  /** Joins a forgotten entity unsubscribes from (their left value is in one of the entity stores). */
  readonly spineJoins: readonly SpineJoin[]
  /** Tables whose rows of a forgotten subject leave every aggregate (forgetting per contribution). */
  readonly contributions: readonly ContributionTable[]
  readonly chunkSets: NonNullable<ForgetOptions['chunkSets']>
  readonly embeddingCache: ForgetOptions['embeddingCache']
}

/**
 * The Redis state store: one implementation of `StateStore` for a single Redis server and for Redis
 * Cluster alike.
 *
 * Layout: one Redis hash per store partition,
 *
 *   rs:{<applicationId>:<store>:<partition>}:state
 *     field `v:<key>`      → the value bytes
 *     field `checkpoint`   → the next changelog offset this hash reflects (decimal)
 *
 *   rs:{<applicationId>:<store>:<partition>}:scan
 *     a sorted set (all scores 0) of the fields `v:<key>` whose key contains SCAN_SEPARATOR: the
 *     index a prefix scan reads with ZRANGEBYLEX (see `groupedKey` in store.ts). Stores that never
 *     write grouped keys never create it.
 *
 * Why one hash: the values and their checkpoint can only be lost together (eviction, a restart
 * from an older snapshot, FLUSHALL), so Redis never holds a checkpoint that claims data it no
 * longer has; `prefetch` is one HMGET, `clear` is one UNLINK, and the hash tag puts every
 * operation of a partition in one cluster slot.
 *
 * Why writes go through one Lua script: a batch's overlay and its checkpoint are applied atomically,
 * the checkpoint last, and only if the stored checkpoint is what this instance expects. The runtime
 * flushes only after its Kafka transaction committed, so Redis is a cache of committed changelog
 * state. The script refuses two kinds of write:
 *   - a checkpoint older than the stored one (RS_STATE_FENCED): a paused, replaced instance (a zombie
 *     whose last transaction did commit) must not overwrite a newer owner's state with older values;
 *   - a partition that is no longer what this instance last read, restored or flushed (RS_STATE_LOST):
 *     after FLUSHALL or a restart without persistence, writing one batch would recreate the partition
 *     with only that batch's keys under a valid-looking checkpoint, and the missing keys would never
 *     be restored. The partition has to be restored from its changelog instead.
 * Re-applying the same checkpoint (retrying a flush whose outcome was uncertain) is always accepted.
 */
import { createHash } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { ConfigError, RagstreamError, ServiceUnavailableError } from '../errors.ts'
import type { Problem } from '../errors.ts'
import { redactUrl } from '../config/endpoints.ts'
import type { Endpoints } from '../config/endpoints.ts'
import { scanEntries } from './memory-store.ts'
import { SCAN_SEPARATOR, assertScannable, type ChangelogRecord, type StateStore } from './store.ts'

/** Where the stores live: a single server (`redis://[:password@]host:port[/db]`) or a Redis Cluster. */
export type RedisTarget =
  | { readonly kind: 'single'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly { host: string; port: number }[]; readonly password?: string }

export interface RedisStateBackendOptions {
  /** Namespaces every key, so topologies (and tests) sharing one Redis never collide. */
  readonly applicationId: string
  readonly target: RedisTarget
  /**
   * Upper bound for one store operation (prefetch, flush, restore, …), queueing while Redis is
   * unreachable included. Past it the operation fails with RS_SERVICE_UNAVAILABLE. Default 10 000.
   */
  readonly operationTimeoutMs?: number
}

// Names end up in Kafka topic names (`<applicationId>-<store>-changelog`) and in Redis hash tags,
// where `{` or `}` would change the slot a partition maps to.
const NAME = /^[A-Za-z0-9._-]{1,200}$/

const CHECKPOINT_FIELD = 'checkpoint'
const VALUE_PREFIX = 'v:'

// KEYS[1]: the partition hash; KEYS[2]: its scan index (only when a field is grouped). ARGV[1]: the new checkpoint; ARGV[2]: the checkpoint this instance
// expects ('' = no expectation, '-' = the partition is known to be empty); ARGV[3]: n, the number
// of puts; ARGV[4 .. 3+2n]: field/value pairs to set; ARGV[4+2n ..]: fields to delete.
// Returns nil when applied; {'fenced', stored} or {'lost', stored or ''} when nothing was written.
// Arguments are passed to HSET/HDEL in chunks because Lua's unpack has a stack limit.
const APPLY_SCRIPT = `
local current = redis.call('HGET', KEYS[1], '${CHECKPOINT_FIELD}')
if current and tonumber(current) > tonumber(ARGV[1]) then return {'fenced', current} end
local expected = ARGV[2]
if expected ~= '' and current ~= ARGV[1] then
  if (expected == '-' and current) or (expected ~= '-' and current ~= expected) then return {'lost', current or ''} end
end
local last = 3 + 2 * tonumber(ARGV[3])
local i = 4
while i <= last do
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
for f = 4, last, 2 do
  if string.find(ARGV[f], '\\0', 1, true) then redis.call('ZADD', KEYS[2], 0, ARGV[f]) end
end
local n = #ARGV
local first = i
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
for f = first, n do
  if string.find(ARGV[f], '\\0', 1, true) then redis.call('ZREM', KEYS[2], ARGV[f]) end
end
redis.call('HSET', KEYS[1], '${CHECKPOINT_FIELD}', ARGV[1])
return false
`
/** ioredis generates these (one per command, with a Buffer-reply twin) but its types leave them out. */
interface BufferScripts {
  evalshaBuffer(sha: string, numKeys: number, ...args: string[]): Promise<unknown>
  evalBuffer(script: string, numKeys: number, ...args: string[]): Promise<unknown>
}

const APPLY_SHA = createHash('sha1').update(APPLY_SCRIPT).digest('hex')

// A prefetch with scans, in one round trip. KEYS[1]: the partition hash; KEYS[2]: its scan index.
// ARGV[1]: n, the number of point fields; ARGV[2 .. 1+n]: the fields; ARGV[2+n ..]: scan prefixes
// (as fields: `v:<prefix>`; `v:` alone, WHOLE_PARTITION, reads every value field of the hash). Returns { values of the point fields, then per prefix a flat list
// field, value, field, value, ... }.
const PREFETCH_SCRIPT = `
local n = tonumber(ARGV[1])
local result = {}
local points = {}
local i = 2
while i <= 1 + n do
  local j = math.min(i + 999, 1 + n)
  local values = redis.call('HMGET', KEYS[1], unpack(ARGV, i, j))
  for _, v in ipairs(values) do points[#points + 1] = v end
  i = j + 1
end
result[1] = points
for p = 2 + n, #ARGV do
  local found = {}
  if ARGV[p] == '${VALUE_PREFIX}' then
    local all = redis.call('HGETALL', KEYS[1])
    for x = 1, #all, 2 do
      if string.sub(all[x], 1, ${VALUE_PREFIX.length}) == '${VALUE_PREFIX}' then
        found[#found + 1] = all[x]
        found[#found + 1] = all[x + 1]
      end
    end
  else
    local fields = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. ARGV[p], '(' .. ARGV[p] .. '\\255')
    local k = 1
    while k <= #fields do
      local j = math.min(k + 999, #fields)
      local values = redis.call('HMGET', KEYS[1], unpack(fields, k, j))
      for x = 1, #values do
        if values[x] then
          found[#found + 1] = fields[k + x - 1]
          found[#found + 1] = values[x]
        end
      end
      k = j + 1
    end
  end
  result[#result + 1] = found
end
return result
`
const PREFETCH_SHA = createHash('sha1').update(PREFETCH_SCRIPT).digest('hex')

type RedisClient = Redis | Cluster

type ApplyOutcome =
  | { readonly applied: true }
  | { readonly applied: false; readonly refused: 'fenced' | 'lost'; readonly stored: bigint | undefined }

/**
 * One Redis connection (or cluster client) shared by every store of a processor instance.
 *
 * @example
 * const backend = RedisStateBackend.fromEndpoints('support-v1', endpointsFromEnv())
 * const customers = backend.store('customers')
 * // … run batches …
 * await backend.close()
 */
export class RedisStateBackend {
  readonly applicationId: string
  /** Service name and address (password redacted) used in error messages. */
  readonly service: string
  readonly address: string
  readonly operationTimeoutMs: number
  readonly #client: RedisClient
  #lastConnectionError: Error | undefined

  constructor(options: RedisStateBackendOptions) {
    const problems: Problem[] = []
    if (!NAME.test(options.applicationId)) {
      problems.push({
        path: '/applicationId',
        message: `must match ${NAME} (it names Kafka topics and Redis hash tags)`,
      })
    }
    const timeout = options.operationTimeoutMs ?? 10_000
    if (!Number.isInteger(timeout) || timeout <= 0)
      problems.push({ path: '/operationTimeoutMs', message: 'must be a positive integer' })
    const target = options.target
    if (target.kind === 'cluster' && target.nodes.length === 0)
      problems.push({ path: '/target/nodes', message: 'at least one node is required' })
    if (problems.length > 0) throw new ConfigError(problems, 'Redis state store options')

    this.applicationId = options.applicationId
    this.operationTimeoutMs = timeout
    if (target.kind === 'single') {
      this.service = 'Redis'
      this.address = redactUrl(target.url)
      this.#client = new Redis(target.url, {
        lazyConnect: true,
        // A batch's commands (a prefetch and a checkpoint read per store partition, a flush per
        // written partition) are issued in one tick: sent as one pipeline, one socket write.
        enableAutoPipelining: true,
        connectTimeout: Math.min(timeout, 5000),
        commandTimeout: timeout,
        // Fail queued commands after a few reconnect attempts instead of holding a batch forever;
        // the client keeps reconnecting in the background, so the runtime's retry finds it back.
        maxRetriesPerRequest: 2,
        retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
      })
    } else {
      this.service = 'Redis Cluster'
      this.address = target.nodes.map((n) => `${n.host}:${n.port}`).join(',')
      this.#client = new Cluster(
        target.nodes.map((n) => ({ host: n.host, port: n.port })),
        {
          lazyConnect: true,
          enableAutoPipelining: true,
          maxRedirections: 16,
          retryDelayOnMoved: 50,
          retryDelayOnClusterDown: 200,
          retryDelayOnTryAgain: 100,
          redisOptions: {
            password: target.password,
            connectTimeout: Math.min(timeout, 5000),
            commandTimeout: timeout,
            maxRetriesPerRequest: 2,
          },
        },
      )
    }
    // Without a listener ioredis prints every reconnect failure; keep the last one for error messages.
    this.#client.on('error', (error: Error) => {
      this.#lastConnectionError = error
    })
    this.#client.on('ready', () => {
      this.#lastConnectionError = undefined
    })
  }

  /** The store backend for the configured endpoints: the single Redis, or the cluster when `cluster` is set. */
  static fromEndpoints(
    applicationId: string,
    endpoints: Endpoints,
    options: { cluster?: boolean; operationTimeoutMs?: number } = {},
  ): RedisStateBackend {
    const target: RedisTarget = options.cluster
      ? { kind: 'cluster', nodes: endpoints.redisClusterNodes }
      : { kind: 'single', url: endpoints.redisUrl }
    return new RedisStateBackend({ applicationId, target, operationTimeoutMs: options.operationTimeoutMs })
  }

  /** A store on this connection. The name is the store's changelog identity (`<applicationId>-<name>-changelog`). */
  store(name: string): RedisStateStore {
    return new RedisStateStore(this, name)
  }

  /** The client, for tests that observe the wire (MONITOR) and for health checks. */
  get client(): RedisClient {
    return this.#client
  }

  /** The Redis key holding one store partition. */
  partitionKey(store: string, partition: number): string {
    return `rs:{${this.applicationId}:${store}:${partition}}:state`
  }

  /**
   * Runs one Redis operation with the backend's time bound; every failure becomes a retriable
   * ServiceUnavailableError naming Redis and its address (never the password).
   */
  async run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    const down = this.#lastConnectionError
    if (down && this.#client.status === 'reconnecting') {
      // While the client is between reconnect attempts, fail at once instead of queueing the
      // batch behind a growing reconnect delay: the caller's backoff decides when to try again.
      throw new ServiceUnavailableError(
        this.service,
        this.address,
        new Error(`${what}: ${down.message}`, { cause: down }),
      )
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.operationTimeoutMs} ms`)),
        this.operationTimeoutMs,
      )
    })
    try {
      return await Promise.race([operation(), timeout])
    } catch (error) {
      if (error instanceof RagstreamError) throw error
      const message = error instanceof Error ? error.message : String(error)
      const last = this.#lastConnectionError
      // "Reached the max retries per request limit" says nothing; the connection error says why.
      const detail =
        last && error instanceof Error && error.name === 'MaxRetriesPerRequestError' ? last.message : message
      throw new ServiceUnavailableError(this.service, this.address, new Error(`${what}: ${detail}`, { cause: error }))
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Applies puts/deletes and a checkpoint to one partition hash if the stored checkpoint is
   * `expected` (undefined = no expectation, null = known empty) or already `checkpoint`.
   */
  async apply(
    key: string,
    checkpoint: bigint,
    expected: bigint | null | undefined,
    puts: Map<string, Buffer>,
    deletes: string[],
  ): Promise<ApplyOutcome> {
    const args: (string | Buffer)[] = [
      checkpoint.toString(),
      expected === undefined ? '' : expected === null ? '-' : expected.toString(),
      String(puts.size),
    ]
    for (const [k, value] of puts) args.push(VALUE_PREFIX + k, value)
    for (const k of deletes) args.push(VALUE_PREFIX + k)
    // The scan index is named only when the write touches grouped keys: a multi-key script on a slot
    // being migrated is refused (TRYAGAIN) until both keys moved, so plain stores never pay for it.
    const grouped = (k: string): boolean => k.includes(SCAN_SEPARATOR)
    const keys = [...puts.keys()].some(grouped) || deletes.some(grouped) ? [key, scanIndexKey(key)] : [key]
    let result: unknown
    try {
      result = await this.#client.evalsha(APPLY_SHA, keys.length, ...keys, ...args)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      result = await this.#client.eval(APPLY_SCRIPT, keys.length, ...keys, ...args)
    }
    if (!Array.isArray(result)) return { applied: true }
    const stored = result[1] === '' || result[1] === undefined ? undefined : BigInt(String(result[1]))
    return { applied: false, refused: result[0] === 'fenced' ? 'fenced' : 'lost', stored }
  }

  /**
   * Point fields and scan prefixes of one partition in one round trip (one script): the values of
   * `fields` in order, and per prefix the fields and values found under it.
   */
  async prefetchWithScans(
    key: string,
    fields: readonly string[],
    prefixes: readonly string[],
  ): Promise<{ points: (Buffer | null)[]; scans: [Buffer, Buffer][][] }> {
    const args = [String(fields.length), ...fields, ...prefixes.map((p) => VALUE_PREFIX + p)]
    let result: unknown
    try {
      // evalshaBuffer, not callBuffer('EVALSHA', …): ioredis 5 drops call()'s command name when it auto-pipelines.
      result = await (this.#client as unknown as BufferScripts).evalshaBuffer(
        PREFETCH_SHA,
        2,
        key,
        scanIndexKey(key),
        ...args,
      )
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      result = await (this.#client as unknown as BufferScripts).evalBuffer(
        PREFETCH_SCRIPT,
        2,
        key,
        scanIndexKey(key),
        ...args,
      )
    }
    const [points, ...found] = result as [(Buffer | null)[], ...Buffer[][]]
    return {
      points,
      scans: found.map((flat) => {
        const pairs: [Buffer, Buffer][] = []
        for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]])
        return pairs
      }),
    }
  }

  async close(): Promise<void> {
    const client = this.#client
    if (client.status === 'end') return
    // quit() waits for pending replies but never settles on a client that is still (re)connecting;
    // disconnect() always ends the client and its reconnect timers.
    if (client.status === 'ready') await client.quit().catch(() => {})
    client.disconnect()
  }
}

/** The scan index of a partition hash: same hash tag, so the same cluster slot. */
function scanIndexKey(partitionKey: string): string {
  return partitionKey.replace(/:state$/, ':scan')
}

/** A `StateStore` whose committed state lives in Redis (see the module comment for the layout). */
export class RedisStateStore implements StateStore {
  readonly name: string
  /** The apply script compares the stored checkpoint with `#expected` (see the module comment). */
  readonly flushComparesCheckpoints = true
  readonly #backend: RedisStateBackend
  /** This batch's writes (null = deleted), per partition: what reads see first. */
  readonly #overlay = new Map<number, Map<string, Buffer | null>>()
  /** Committed values loaded by prefetch (null = absent in Redis), per partition. */
  readonly #cache = new Map<number, Map<string, Buffer | null>>()
  /** Prefixes this batch prefetched for scans, with the committed keys found under each, per partition. */
  readonly #scanned = new Map<number, Map<string, string[]>>()
  /** Changes since the last drain, keyed `<partition>:<key>`; re-inserted on rewrite so the order is write order. */
  readonly #pending = new Map<string, ChangelogRecord>()
  /** The checkpoint this instance last read, restored or flushed per partition (null = known empty): the next write's precondition. */
  readonly #expected = new Map<number, bigint | null>()

  constructor(backend: RedisStateBackend, name: string) {
    if (!NAME.test(name)) {
      throw new ConfigError(
        [
          {
            path: '/store/name',
            message: `"${name}" must match ${NAME} (it names a changelog topic and a Redis hash tag)`,
          },
        ],
        'state store',
      )
    }
    this.#backend = backend
    this.name = name
  }

  async prefetch(partition: number, keys: Iterable<string>, prefixes?: Iterable<string>): Promise<void> {
    const overlay = this.#overlay.get(partition)
    let cache = this.#cache.get(partition)
    const missing = new Set<string>()
    for (const key of keys) {
      if (overlay?.has(key) || cache?.has(key)) continue
      missing.add(key)
    }
    const scans: string[] = []
    for (const prefix of prefixes ?? []) {
      assertScannable(this.name, prefix)
      if (!this.#scanned.get(partition)?.has(prefix) && !scans.includes(prefix)) scans.push(prefix)
    }
    if (missing.size === 0 && scans.length === 0) return
    const wanted = [...missing]
    const fields = wanted.map((k) => VALUE_PREFIX + k)
    const client = this.#backend.client
    const key = this.#key(partition)
    if (!cache) {
      cache = new Map()
      this.#cache.set(partition, cache)
    }
    if (scans.length === 0) {
      const values = await this.#backend.run(`prefetch store "${this.name}" partition ${partition}`, () =>
        client.hmgetBuffer(key, ...fields),
      )
      for (let i = 0; i < wanted.length; i++) cache.set(wanted[i], values[i] ?? null)
      return
    }
    const { points, scans: found } = await this.#backend.run(
      `prefetch store "${this.name}" partition ${partition}`,
      () => this.#backend.prefetchWithScans(key, fields, scans),
    )
    for (let i = 0; i < wanted.length; i++) cache.set(wanted[i], points[i] ?? null)
    let scanned = this.#scanned.get(partition)
    if (scanned === undefined) this.#scanned.set(partition, (scanned = new Map()))
    for (let i = 0; i < scans.length; i++) {
      const keys: string[] = []
      for (const [field, value] of found[i]) {
        const k = field.toString('utf8', VALUE_PREFIX.length)
        keys.push(k)
        if (!cache.has(k)) cache.set(k, value)
      }
      scanned.set(scans[i], keys)
    }
  }

  scan(partition: number, prefix: string): [string, Buffer][] {
    const committed = this.#scanned.get(partition)?.get(prefix)
    if (committed === undefined) {
      throw new RagstreamError(
        'RS_STATE_NOT_PREFETCHED',
        `store "${this.name}" partition ${partition}: prefix ${JSON.stringify(prefix)} was scanned without being prefetched for this batch`,
        {
          context: { store: this.name, partition },
          hint: "add the prefix to the topology's prefetch plan for this batch",
        },
      )
    }
    return scanEntries(committed, this.#cache.get(partition), this.#overlay.get(partition), prefix)
  }

  get(partition: number, key: string): Buffer | undefined {
    const overlay = this.#overlay.get(partition)
    if (overlay?.has(key)) return overlay.get(key) ?? undefined
    const cache = this.#cache.get(partition)
    if (cache?.has(key)) return cache.get(key) ?? undefined
    throw new RagstreamError(
      'RS_STATE_NOT_PREFETCHED',
      `store "${this.name}" partition ${partition}: key "${key}" was read without being prefetched for this batch`,
      {
        context: { store: this.name, partition, key },
        hint: "add the key to the topology's prefetchKeys for this batch",
      },
    )
  }

  put(partition: number, key: string, value: Buffer): void {
    this.#write(partition, key, value)
  }

  delete(partition: number, key: string): void {
    this.#write(partition, key, null)
  }

  drainChangelog(): ChangelogRecord[] {
    const records = [...this.#pending.values()]
    this.#pending.clear()
    return records
  }

  async flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void> {
    for (const partition of this.#overlay.keys()) {
      if (!checkpoints.has(partition)) {
        // A programming error in the runtime: data without its checkpoint would make Redis claim less than it holds.
        throw new Error(`store "${this.name}": flush without a checkpoint for partition ${partition}, which has writes`)
      }
    }
    const writes = [...checkpoints].map(async ([partition, checkpoint]) => {
      const key = this.#key(partition)
      const puts = new Map<string, Buffer>()
      const deletes: string[] = []
      for (const [key, value] of this.#overlay.get(partition) ?? []) {
        if (value === null) deletes.push(key)
        else puts.set(key, value)
      }
      const outcome = await this.#backend.run(`flush store "${this.name}" partition ${partition}`, () =>
        this.#backend.apply(key, checkpoint, this.#expected.get(partition), puts, deletes),
      )
      if (!outcome.applied) throw this.#refused(partition, checkpoint, outcome.refused, outcome.stored)
      this.#expected.set(partition, checkpoint)
    })
    // Every partition is attempted; on any failure the overlay stays, so the flush can be retried
    // as a whole (re-applying a partition with the same checkpoint is idempotent).
    const results = await Promise.allSettled(writes)
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
    // A batch reads only what it prefetched: dropping the cache keeps memory bounded by the batch.
    this.#overlay.clear()
    this.#cache.clear()
    this.#scanned.clear()
  }

  discard(): void {
    this.#overlay.clear()
    this.#cache.clear()
    this.#scanned.clear()
    this.#pending.clear()
  }

  async checkpoint(partition: number): Promise<bigint | undefined> {
    const client = this.#backend.client
    const key = this.#key(partition)
    const stored = await this.#backend.run(`read checkpoint of store "${this.name}" partition ${partition}`, () =>
      client.hget(key, CHECKPOINT_FIELD),
    )
    const checkpoint = stored === null ? undefined : BigInt(stored)
    this.#expected.set(partition, checkpoint ?? null)
    return checkpoint
  }

  async restore(
    partition: number,
    records: readonly { key: string; value: Buffer | null }[],
    nextOffset: bigint,
  ): Promise<void> {
    // Last write per key wins, so puts and deletes can be applied as two sets.
    const latest = new Map<string, Buffer | null>()
    for (const { key, value } of records) {
      latest.delete(key)
      latest.set(key, value)
    }
    const puts = new Map<string, Buffer>()
    const deletes: string[] = []
    for (const [key, value] of latest) {
      if (value === null) deletes.push(key)
      else puts.set(key, value)
    }
    const key = this.#key(partition)
    this.#forgetPartition(partition)
    const outcome = await this.#backend.run(`restore store "${this.name}" partition ${partition}`, () =>
      this.#backend.apply(key, nextOffset, this.#expected.get(partition), puts, deletes),
    )
    if (!outcome.applied) throw this.#refused(partition, nextOffset, outcome.refused, outcome.stored)
    this.#expected.set(partition, nextOffset)
  }

  async clear(partition: number): Promise<void> {
    const key = this.#key(partition)
    this.#forgetPartition(partition)
    const client = this.#backend.client
    // The hash first: an index entry whose field is gone is skipped by scans, the reverse would hide entries.
    await this.#backend.run(`clear store "${this.name}" partition ${partition}`, async () => {
      await client.unlink(key)
      await client.unlink(scanIndexKey(key))
    })
    this.#expected.set(partition, null)
  }

  async close(): Promise<void> {
    // The connection belongs to the backend (shared by every store); closing a store drops its local state.
    this.discard()
  }

  #key(partition: number): string {
    if (!Number.isInteger(partition) || partition < 0)
      throw new RangeError(`store "${this.name}": invalid partition ${partition}`)
    return this.#backend.partitionKey(this.name, partition)
  }

  #write(partition: number, key: string, value: Buffer | null): void {
    let overlay = this.#overlay.get(partition)
    if (!overlay) {
      overlay = new Map()
      this.#overlay.set(partition, overlay)
    }
    overlay.set(key, value)
    const id = `${partition}:${key}`
    this.#pending.delete(id)
    this.#pending.set(id, { store: this.name, partition, key, value })
  }

  #forgetPartition(partition: number): void {
    this.#overlay.delete(partition)
    this.#cache.delete(partition)
    this.#scanned.delete(partition)
    for (const [id, record] of this.#pending) if (record.partition === partition) this.#pending.delete(id)
  }

  #refused(
    partition: number,
    attempted: bigint,
    reason: 'fenced' | 'lost',
    stored: bigint | undefined,
  ): RagstreamError {
    const context = {
      store: this.name,
      partition,
      offset: stored,
      service: this.#backend.service,
      address: this.#backend.address,
    }
    if (reason === 'fenced') {
      return new RagstreamError(
        'RS_STATE_FENCED',
        `store "${this.name}" partition ${partition}: Redis holds changelog checkpoint ${stored}, newer than ${attempted}; another instance owns this partition`,
        { context },
      )
    }
    const expected = this.#expected.get(partition)
    return new RagstreamError(
      'RS_STATE_LOST',
      `store "${this.name}" partition ${partition}: Redis holds checkpoint ${stored ?? 'none'}, but this instance last saw ${expected ?? 'none'} (Redis lost data, or another instance wrote); the partition must be restored from its changelog`,
      {
        context,
        hint: 'the runtime restores the partition from its changelog; a Redis without persistence loses stores on restart',
      },
    )
  }
}

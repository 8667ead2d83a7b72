/**
 * How far a replay is, counted over the whole job: the processor's records (its sources up to where
 * they ended when the replay began, and the repartition records it writes to itself on the way) and
 * the sink's (the chunk records the processor writes for it). A version is ready when its table has
 * caught up, not when the processor has, so the bar reaches 100% only when the sink has read
 * everything; in bulk mode the index build follows as its own phase.
 *
 * Only the sources' total is known at the start. The downstream totals are estimated from what the
 * upstream part produced so far, extrapolated to its total (repartition records per source record,
 * chunk records per processor record), and become exact once the upstream part is done. The ETA is
 * the later of the two parts' (remaining / rate since that part started moving): the sink cannot
 * finish before the processor has written its last chunk, nor faster than it writes rows.
 *
 * Offsets count a transaction's commit marker too, on both ends, so done and total stay comparable.
 */
import type { PartitionLag } from './consumer-lag.ts'

export interface LagReading {
  readonly sources: readonly PartitionLag[]
  readonly repartitions: readonly PartitionLag[]
  readonly sink: readonly PartitionLag[]
}

export interface PartProgress {
  readonly done: number
  readonly total: number
  /** False while `total` is extrapolated (the part upstream still has work). */
  readonly exact: boolean
}

export interface ReplayEstimate {
  readonly sources: PartProgress
  readonly repartitions: PartProgress
  /** Sources and repartitions: every record the processor reads. */
  readonly processor: PartProgress
  /** Chunk records the sink reads. */
  readonly sink: PartProgress
  /** Processor and sink records together: the job's records. */
  readonly job: PartProgress
  /** 0…1; 1 only when nothing is left (a transactional topic's last marker aside). */
  readonly fraction: number
  /** Seconds left for the slower part; Infinity while a part with work left has not moved yet. */
  readonly etaSeconds: number
}

const key = (l: PartitionLag): string => `${l.topic}:${l.partition}`
const position = (l: PartitionLag): bigint => BigInt(l.end) - BigInt(l.lag)

/** Per partition: where the consumer was and where the log ended at the first reading. */
interface Start {
  readonly position: bigint
  readonly end: bigint
}

function starts(lags: readonly PartitionLag[]): Map<string, Start> {
  return new Map(lags.map((l) => [key(l), { position: position(l), end: BigInt(l.end) }]))
}

/** Records read since the start, records there were to read at the start, and records written since. */
function moved(lags: readonly PartitionLag[], from: ReadonlyMap<string, Start>) {
  let done = 0n
  let backlog = 0n
  let produced = 0n
  let lag = 0
  for (const l of lags) {
    // A partition that appeared after the start (an internal topic created by the processor) began empty.
    const s = from.get(key(l)) ?? { position: 0n, end: 0n }
    done += position(l) - s.position
    backlog += s.end - s.position
    produced += BigInt(l.end) - s.end
    lag += l.lag
  }
  return { done: Number(done), backlog: Number(backlog), produced: Number(produced), lag }
}

/** `partial / progress × whole`, never below `partial`: the total of a part whose producer is `progress` of the way. */
const extrapolate = (partial: number, progress: number): number =>
  progress >= 1 ? partial : progress > 0 ? Math.max(partial, Math.round(partial / progress)) : partial

/**
 * Tracks one replay: give it the first lag reading, then every later one.
 *
 * @example
 * const progress = new ReplayProgress(await pipeline.detailedLag(), Date.now())
 * const e = progress.update(await pipeline.detailedLag(), Date.now())
 * console.log(`${(e.fraction * 100).toFixed(0)}% ETA ${e.etaSeconds}s`)
 */
export class ReplayProgress {
  readonly #sources: Map<string, Start>
  readonly #repartitions: Map<string, Start>
  readonly #sink: Map<string, Start>
  /** Per part, the time of the last reading before it had moved (its rate counts from there). */
  #processorSince: number
  #sinkSince: number

  constructor(first: LagReading, at: number) {
    this.#sources = starts(first.sources)
    this.#repartitions = starts(first.repartitions)
    this.#sink = starts(first.sink)
    this.#processorSince = at
    this.#sinkSince = at
  }

  update(reading: LagReading, at: number): ReplayEstimate {
    // Sources: only what was there when the replay began (later records are live traffic).
    let sourceDone = 0n
    let sourceTotal = 0n
    for (const l of reading.sources) {
      const s = this.#sources.get(key(l)) ?? { position: 0n, end: 0n }
      const p = position(l)
      sourceDone += (p < s.end ? p : s.end) - s.position
      sourceTotal += s.end - s.position
    }
    const sources: PartProgress = { done: Number(sourceDone), total: Number(sourceTotal), exact: true }
    const sourcesLeft = sources.total - sources.done
    const sourceShare = sources.total === 0 ? 1 : sources.done / sources.total

    const rep = moved(reading.repartitions, this.#repartitions)
    const repExact = sourcesLeft <= 0
    const repartitions: PartProgress = {
      done: rep.done,
      total: Math.max(rep.done + rep.lag, rep.backlog + extrapolate(rep.produced, sourceShare)),
      exact: repExact,
    }
    const processor: PartProgress = {
      done: sources.done + repartitions.done,
      total: sources.total + repartitions.total,
      exact: repExact,
    }

    const chunks = moved(reading.sink, this.#sink)
    const processorShare = processor.total === 0 ? 1 : processor.done / processor.total
    const processorLeft = processor.total - processor.done
    // Caught up but for the commit markers at the ends of the repartition topics.
    const processorDone = sourcesLeft <= 0 && rep.lag <= reading.repartitions.length
    const sink: PartProgress = {
      done: chunks.done,
      total: Math.max(
        chunks.done + chunks.lag,
        chunks.backlog + extrapolate(chunks.produced, processorDone ? 1 : processorShare),
      ),
      exact: processorDone,
    }
    const job: PartProgress = {
      done: processor.done + sink.done,
      total: processor.total + sink.total,
      exact: sink.exact,
    }
    const sinkDone = processorDone && chunks.lag <= reading.sink.length
    const fraction = sinkDone ? 1 : job.total === 0 ? 0 : Math.min(job.done / job.total, 0.99)

    if (processor.done === 0) this.#processorSince = at
    if (sink.done === 0) this.#sinkSince = at
    const left = (remaining: number, done: number, since: number): number =>
      remaining <= 0 ? 0 : done > 0 && at > since ? remaining / (done / ((at - since) / 1000)) : Infinity
    const etaSeconds = sinkDone
      ? 0
      : Math.max(
          processorDone ? 0 : left(processorLeft, processor.done, this.#processorSince),
          left(sink.total - sink.done, sink.done, this.#sinkSince),
        )
    return { sources, repartitions, processor, sink, job, fraction, etaSeconds }
  }
}

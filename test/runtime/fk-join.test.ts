// The FK-join semantics suite (test/support/fk-join-cases.ts) on the real runtime: the same cases,
// with the same assertions, that run on the test driver in test/operators/fk-join.test.ts — here on
// the Kafka runtime (exactly once, Redis state stores), each case on its own fresh topics, group and
// Redis keys. Cases run a few at a time: each mostly waits on the broker.
import { before, describe, it } from 'node:test'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import { fkJoinCases } from '../support/fk-join-cases.ts'
import { kafkaFkJoinRunner } from '../support/kafka-fk-runner.ts'
import { endpoints } from '../support/stack.ts'

// 22 cases, 6 at a time, each with its own runtime (10-40 s apiece on 2 busy cores): the whole suite
// took 52 s in a quiet CI run and over 150 s beside other work.
describe('fk join on the Kafka runtime', { concurrency: 6, timeout: 360_000 }, () => {
  before(async () => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
  })
  for (const fkCase of fkJoinCases) {
    it(fkCase.name, { timeout: 90_000 }, () => fkCase.run(kafkaFkJoinRunner))
  }
})

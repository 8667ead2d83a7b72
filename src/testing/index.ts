// The public test driver: run a topology in unit tests without a broker.
export {
  TopologyTestDriver,
  type TestDriverOptions,
  type TestInputRecord,
  type TestOutputRecord,
  type TestRecordOrigin,
} from './test-driver.ts'
export { DEAD_LETTER_HEADERS } from '../topology/compile.ts'
export { MemoryRagServices, type MemoryRagServicesOptions } from './memory-services.ts'

// The conformance suite on the in-memory store (the test driver's store): instances over one
// MemoryStateBacking share committed data the way workers share Redis.
import { MemoryStateBacking, MemoryStateStore } from '../../src/state/memory-store.ts'
import { stateStoreConformance } from './conformance.ts'

stateStoreConformance('memory store', async () => {
  const backing = new MemoryStateBacking()
  return { open: (name) => new MemoryStateStore(name, backing) }
})

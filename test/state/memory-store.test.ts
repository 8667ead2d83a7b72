// The conformance suite on an in-memory store. Until src/state/memory-store.ts lands, this runs the
// interim store in test/state/interim-memory-store.ts.
import { InterimMemoryBacking, InterimMemoryStore } from './interim-memory-store.ts'
import { stateStoreConformance } from './conformance.ts'

stateStoreConformance('memory store', async () => {
  const backing = new InterimMemoryBacking()
  return { open: (name) => new InterimMemoryStore(backing, name) }
})

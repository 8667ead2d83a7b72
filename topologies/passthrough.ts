// The smallest topology: a compacted topic read as a table and written back out, unchanged.
// The runtime benchmark's pass-through case.
import { TopologyBuilder } from '../src/index.ts'

const builder = new TopologyBuilder({ applicationId: 'passthrough' })
builder.table('passthrough.input', { name: 'input' }).to('passthrough.output')

export default builder.build()

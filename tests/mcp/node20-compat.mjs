// Runs @modelcontextprotocol/conformance (built for Node 22) on Node 20:
//   node --import ./node20-compat.mjs node_modules/@modelcontextprotocol/conformance/dist/index.js ...
// Its dist imports `globSync` from 'fs' (Node 22+), which makes the whole
// module fail to link on Node 20 even though only `tier-check` calls it. A
// resolve hook gives that one importer an 'fs' that is Node's own plus a
// small globSync (fs-glob-shim.mjs). Nothing else is changed; every shim is
// listed, with the reason, in CONFORMANCE.md.
import { register } from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) register('./node20-compat-hooks.mjs', import.meta.url);

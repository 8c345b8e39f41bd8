// Module customization hooks (module.register) for node20-compat.mjs.
const SHIM = new URL('./fs-glob-shim.mjs', import.meta.url).href;
const CONFORMANCE = '/node_modules/@modelcontextprotocol/conformance/dist/';

export async function resolve(specifier, context, next) {
  // Only the conformance suite's own 'fs' import: every other module (and
  // the shim itself, which imports node:fs) gets the real one.
  if ((specifier === 'fs' || specifier === 'node:fs') &&
      context.parentURL && context.parentURL.includes(CONFORMANCE)) {
    return { url: SHIM, shortCircuit: true };
  }
  return next(specifier, context);
}

// Node's 'fs' plus globSync (Node 22+) for the conformance suite on Node 20.
// The suite calls globSync once, with `**/checks.json` and {cwd} (tier-check);
// this supports `**/` prefixes and `*`/`?` inside one path segment, and
// throws on anything else rather than guessing.
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

function segmentRegExp(seg) {
  if (/[[\]{}!+@()]/.test(seg)) throw new Error(`fs-glob-shim: unsupported glob segment ${seg}`);
  const body = seg.replace(/[.^$|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

export function globSync(pattern, options = {}) {
  if (Array.isArray(pattern)) return pattern.flatMap((p) => globSync(p, options));
  if (typeof pattern !== 'string' || path.isAbsolute(pattern))
    throw new Error(`fs-glob-shim: unsupported pattern ${pattern}`);
  const cwd = options.cwd ? String(options.cwd) : process.cwd();
  const segs = pattern.split('/').filter((s) => s !== '' && s !== '.');
  const out = [];
  const walk = (rel, i) => {
    if (i === segs.length) { out.push(rel); return; }
    const dir = path.join(cwd, rel);
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    if (segs[i] === '**') {
      walk(rel, i + 1);                      // ** matches zero segments
      for (const e of entries)
        if (e.isDirectory() && !e.name.startsWith('.')) walk(rel ? `${rel}/${e.name}` : e.name, i);
      return;
    }
    const re = segmentRegExp(segs[i]);
    for (const e of entries) {
      if (!re.test(e.name) || (e.name.startsWith('.') && !segs[i].startsWith('.'))) continue;
      if (i + 1 < segs.length && !e.isDirectory()) continue;
      walk(rel ? `${rel}/${e.name}` : e.name, i + 1);
    }
  };
  walk('', 0);
  return [...new Set(out)];
}

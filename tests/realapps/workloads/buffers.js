// A Node.js workload for the realapps suite: Buffers large enough to be
// allocated one by one by Node's ArrayBuffer allocator (malloc/calloc, not
// V8's own heap), JSON and strings. Prints a checksum that depends only on N.
//   node buffers.js [N]
"use strict";

function main(n) {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const buf = Buffer.alloc(16384 + (i % 64), i % 251);
    total += buf[i % buf.length] + buf.length;
    const doc = JSON.parse(JSON.stringify({ i, name: `item-${i}`, tags: [i % 3, i % 5, i % 7] }));
    total += doc.name.length + doc.tags.reduce((a, b) => a + b, 0);
  }
  console.log(`buffers n=${n} total=${total}`);
}

main(Number(process.argv[2] || 1000));

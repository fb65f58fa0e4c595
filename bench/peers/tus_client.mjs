// Peer: tus-js-client uploading one file.   node tus_client.mjs PORT FILE [CHUNK_BYTES]
// Without CHUNK_BYTES the whole file goes in one PATCH. Prints one JSON line {bytes, seconds}.
import fs from 'node:fs';
import * as tus from 'tus-js-client';
const [port, path] = [Number(process.argv[2]), process.argv[3]];
const chunkSize = process.argv[4] ? Number(process.argv[4]) : Infinity;
const size = fs.statSync(path).size;
const t0 = performance.now();
await new Promise((resolve, reject) => {
  const up = new tus.Upload(fs.createReadStream(path), {
    endpoint: `http://127.0.0.1:${port}/files`, uploadSize: size, chunkSize,
    retryDelays: null, metadata: {filename: 'bench.bin'}, onError: reject, onSuccess: resolve});
  up.start();
});
console.log(JSON.stringify({bytes: size, seconds: (performance.now() - t0) / 1000}));

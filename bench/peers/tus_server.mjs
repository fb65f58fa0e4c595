// Peer: @tus/server with @tus/file-store on node:http.   node tus_server.mjs PORT STORE_DIR
import http from 'node:http';
import {Server} from '@tus/server';
import {FileStore} from '@tus/file-store';
const [port, dir] = [Number(process.argv[2]), process.argv[3]];
const tus = new Server({path: '/files', datastore: new FileStore({directory: dir})});
http.createServer((req, res) => tus.handle(req, res)).listen(port, '127.0.0.1', () => console.log('listening'));

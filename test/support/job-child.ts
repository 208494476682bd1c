// A separate node-mgr-like process for the durability tests, which kill it with SIGKILL.
//
//   node --import tsx test/support/job-child.ts <stateDir> [mode]
//
// modes:
//   long-job (default)  finishes job `job-done`, starts `job-long` (never ends), prints `ready`
//   hammer              writes transitions and job progress as fast as it can, prints `ready`
//   open                opens the store and prints {"ok":true} or the StateStoreError as JSON
import { pino } from 'pino';
import { openStateStore, paramsHash, StateStoreError } from '../../src/state/store.ts';
import { JobRunner } from '../../src/jobs/runner.ts';

const [stateDir, mode = 'long-job'] = process.argv.slice(2);
if (!stateDir) {
  process.stderr.write('usage: job-child.ts <stateDir> [long-job|hammer|open]\n');
  process.exit(2);
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

if (mode === 'open') {
  try {
    openStateStore(stateDir).close();
    say(JSON.stringify({ ok: true }));
  } catch (err) {
    if (!(err instanceof StateStoreError)) throw err;
    say(JSON.stringify({ ok: false, name: err.name, code: err.code, message: err.message }));
  }
} else if (mode === 'hammer') {
  const store = openStateStore(stateDir);
  store.insertJob({ id: 'hammer', type: 'coldbackup', params: {}, paramsHash: paramsHash({}) });
  let n = 0;
  const burst = () => {
    for (let i = 0; i < 200; i++, n++) {
      store.recordTransition({ nodeId: 'mysql-6001', from: 'running', to: 'backing_up', event: 'BACKUP', detail: `#${n}` });
      store.updateJob('hammer', { status: 'running', phase: 'copying', progress: { phase: 'copying', bytes_done: n } });
    }
    if (n === 200) say('ready');
    setImmediate(burst);
  };
  burst();
} else if (mode === 'long-job') {
  const store = openStateStore(stateDir);
  const runner = new JobRunner({ store, log: pino({ level: 'silent' }), retention: false });
  runner.register('quick', async () => ({ file: '/coldbackup/c1/s1/coldback_20250101_000000.tgz' }));
  runner.register('slow', async (ctx) => {
    ctx.progress({ phase: 'copying', bytesDone: 0, bytesTotal: 1000 });
    await new Promise<never>(() => {}); // until the parent kills this process
  });

  const params = { s_ip: '127.0.0.1', s_port: 6001, s_user: 'root', s_pwd: 'hunter2' };
  runner.submit({ id: 'job-done', type: 'quick', params, nodeId: 'mysql-6001' });
  runner.onUpdate((job) => {
    if (job.id === 'job-done' && job.status === 'succeeded') {
      runner.submit({ id: 'job-long', type: 'slow', params, nodeId: 'mysql-6001' });
    }
    if (job.id === 'job-long' && job.phase === 'copying') say('ready');
  });
  setInterval(() => {}, 1000);
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}

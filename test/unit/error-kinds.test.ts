// Domain errors say their kind; the HTTP edge alone maps a kind to a status (src/http/errors.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { errorReply } from '../../src/http/errors.ts';
import { errorKind } from '../../src/error-kind.ts';
import { NodeCommandError } from '../../src/supervisor/supervisor.ts';
import { TableTransferError } from '../../src/jobs/table-import.ts';
import { JobRunnerClosedError, JobSubmissionError } from '../../src/jobs/job-errors.ts';
import { CommandError } from '../../src/jobs/command.ts';
import { SqlNameError } from '../../src/jobs/sql-names.ts';
import { StateStoreError } from '../../src/state/store.ts';

describe('error kinds at the HTTP edge', () => {
  it('answers each kind with its status and the error\'s own sentence', () => {
    assert.deepEqual(errorReply(new CommandError('unknown command "x"')), { status: 400, info: 'unknown command "x"' });
    assert.deepEqual(errorReply(new SqlNameError('table name "" is empty')), { status: 400, info: 'table name "" is empty' });
    assert.deepEqual(errorReply(new JobSubmissionError('bad job')), { status: 400, info: 'bad job' });
    assert.deepEqual(errorReply(new NodeCommandError('no node on port 1', 'not_found')), { status: 404, info: 'no node on port 1' });
    assert.deepEqual(errorReply(new NodeCommandError('node is busy')), { status: 409, info: 'node is busy' });
    assert.deepEqual(errorReply(new JobRunnerClosedError()), { status: 503, info: 'node-mgr is shutting down and accepts no new job' });
    assert.deepEqual(errorReply(new StateStoreError('state file is read-only', 'SQLITE_READONLY', '/x')), { status: 503, info: 'state file is read-only' });
    // Our own failure still carries the sentence its layer wrote, without the "internal error" prefix of a surprise.
    assert.deepEqual(errorReply(new TableTransferError('importing', 'IMPORT TABLESPACE failed')), { status: 500, info: 'IMPORT TABLESPACE failed' });
    assert.deepEqual(errorReply(new Error('boom')), { status: 500, info: 'internal error: boom' });
  });

  it('reads a kind only from an error that declares one of ours', () => {
    assert.equal(errorKind(new TableTransferError('preflight', 'x', 'conflict')), 'conflict');
    assert.equal(errorKind(Object.assign(new Error('x'), { kind: 'mysql' })), undefined);
    assert.equal(errorKind({ kind: 'invalid', message: 'not an Error' }), undefined);
    assert.equal(errorReply(Object.assign(new Error('x'), { kind: 'mysql' })).status, 500);
  });
});

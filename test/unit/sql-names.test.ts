import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkIdentifier,
  filenameEncode,
  kunlunDatabaseName,
  qualifiedTable,
  quoteIdentifier,
  SqlNameError,
  tableFile,
} from '../../src/jobs/sql-names.ts';

describe('quoteIdentifier', () => {
  it('wraps a name in backticks', () => {
    assert.equal(quoteIdentifier('t1'), '`t1`');
  });

  it('doubles backticks inside the name, so a name cannot close its quote', () => {
    assert.equal(quoteIdentifier('a`b'), '`a``b`');
    assert.equal(quoteIdentifier('x`; DROP TABLE y; --'), '`x``; DROP TABLE y; --`');
  });

  it('keeps Kunlun names with dollars as they are', () => {
    assert.equal(qualifiedTable('postgres_$$_public', 'orders'), '`postgres_$$_public`.`orders`');
  });
});

describe('checkIdentifier', () => {
  it('accepts 64 characters and refuses 65', () => {
    assert.equal(checkIdentifier('a'.repeat(64), 'table name'), 'a'.repeat(64));
    assert.throws(() => checkIdentifier('a'.repeat(65), 'table name'), /longer than 64/);
  });

  it('counts characters, not bytes or UTF-16 units', () => {
    assert.doesNotThrow(() => checkIdentifier('é'.repeat(64), 'table name'));
  });

  it('refuses empty names, NUL and control characters, trailing spaces and astral characters', () => {
    assert.throws(() => checkIdentifier('', 'table name'), SqlNameError);
    assert.throws(() => checkIdentifier('a\0b', 'table name'), /control character/);
    assert.throws(() => checkIdentifier('a\nb', 'table name'), /control character/);
    assert.throws(() => checkIdentifier('ab ', 'table name'), /ends with a space/);
    assert.throws(() => checkIdentifier('a😀', 'table name'), /Basic Multilingual Plane/);
  });

  it('names the field in its message', () => {
    assert.throws(() => checkIdentifier('', 'destination table name'), /destination table name is empty/);
  });
});

describe('kunlunDatabaseName', () => {
  it('maps a PostgreSQL db.schema to the MySQL database db_$$_schema', () => {
    assert.equal(kunlunDatabaseName('postgres.public'), 'postgres_$$_public');
  });

  it('takes a name without a dot as the MySQL name it is', () => {
    assert.equal(kunlunDatabaseName('postgres_$$_public'), 'postgres_$$_public');
    assert.equal(kunlunDatabaseName('shop'), 'shop');
  });

  it('refuses names with two dots or an empty part', () => {
    assert.throws(() => kunlunDatabaseName('a.b.c'), /more than one dot/);
    assert.throws(() => kunlunDatabaseName('.public'), /empty part/);
  });
});

describe('filenameEncode (MariaDB on-disk names)', () => {
  it('writes $ as @0024, as the database dirs of Kunlun show', () => {
    assert.equal(filenameEncode('postgres_$$_public'), 'postgres_@0024@0024_public');
  });

  it('keeps [0-9A-Za-z_] and writes other ASCII as @ and four hex digits', () => {
    assert.equal(filenameEncode('Ab_09'), 'Ab_09');
    assert.equal(filenameEncode('a.b-c d/e'), 'a@002eb@002dc@0020d@002fe');
    assert.equal(filenameEncode('@'), '@0040');
  });

  it('writes letters of the Latin/Greek/Cyrillic blocks with their two-character codes', () => {
    // The values the server gives: SELECT CAST(CONVERT('ä' USING filename) AS BINARY) → @0k.
    assert.equal(filenameEncode('ä'), '@0k');
    assert.equal(filenameEncode('À'), '@0G');
    assert.equal(filenameEncode('Ω'), '@7P');
  });

  it('writes other characters as their code point in hex', () => {
    assert.equal(filenameEncode('€'), '@20ac');
    assert.equal(filenameEncode('ﾟ'), '@ff9f');
  });

  it('never yields a path separator or a dot, so a table file stays in its database dir', () => {
    const p = tableFile('/data', '../etc', '../../passwd', '.ibd');
    assert.equal(p, '/data/@002e@002e@002fetc/@002e@002e@002f@002e@002e@002fpasswd.ibd');
  });
});

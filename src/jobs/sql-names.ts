// SQL names for the table jobs: identifier checks and quoting, Kunlun's database names, and the
// file names MariaDB/MySQL keep tables under on disk.
import path from 'node:path';
import type { KindedError } from '../error-kind.ts';

/** A database or table name the jobs refuse; the message names the field and why. */
export class SqlNameError extends Error implements KindedError {
  readonly kind = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'SqlNameError';
  }
}

/** MySQL/MariaDB limit identifiers to 64 characters. */
export const MAX_IDENTIFIER_CHARS = 64;

/**
 * Throws unless `name` is an identifier the server accepts and we are willing to send: 1–64
 * characters, no NUL or other control character, no supplementary-plane character (the server
 * refuses them), no trailing space (the server refuses those too). Everything else, `$`, `.` or a
 * backtick included, is legal once quoted.
 */
export function checkIdentifier(name: string, what: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new SqlNameError(`${what} is empty`);
  const chars = [...name];
  if (chars.length > MAX_IDENTIFIER_CHARS) throw new SqlNameError(`${what} ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_CHARS} characters`);
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || cp === 0x7f) throw new SqlNameError(`${what} ${JSON.stringify(name)} contains a control character`);
    if (cp > 0xffff) throw new SqlNameError(`${what} ${JSON.stringify(name)} contains a character outside the Basic Multilingual Plane, which MySQL identifiers cannot hold`);
    if (cp >= 0xd800 && cp <= 0xdfff) throw new SqlNameError(`${what} ${JSON.stringify(name)} is not valid Unicode`);
  }
  if (name.endsWith(' ')) throw new SqlNameError(`${what} ${JSON.stringify(name)} ends with a space, which MySQL identifiers cannot`);
  return name;
}

/** `name` quoted with backticks, backticks inside doubled. Checks the name first. */
export function quoteIdentifier(name: string, what = 'identifier'): string {
  checkIdentifier(name, what);
  return '`' + name.replace(/`/g, '``') + '`';
}

/** `db`.`table`, both quoted. */
export function qualifiedTable(db: string, table: string): string {
  return `${quoteIdentifier(db, 'database name')}.${quoteIdentifier(table, 'table name')}`;
}

/**
 * Kunlun keeps a PostgreSQL schema `db.schema` in the MySQL database `db_$$_schema`. A name with one
 * dot is mapped; a name without is taken as the MySQL database name it already is
 * (e.g. `postgres_$$_public`). More than one dot is ambiguous and refused.
 */
export function kunlunDatabaseName(given: string): string {
  const parts = given.split('.');
  if (parts.length > 2) throw new SqlNameError(`database name ${JSON.stringify(given)} has more than one dot; give db.schema or the MySQL name db_$$_schema`);
  const name = parts.length === 2 ? `${parts[0]}_$$_${parts[1]}` : given;
  if (parts.length === 2 && (parts[0] === '' || parts[1] === '')) throw new SqlNameError(`database name ${JSON.stringify(given)} has an empty part around its dot`);
  return checkIdentifier(name, 'database name');
}

// ---------------------------------------------------------------------------------------------
// On-disk names: MariaDB's (and MySQL's) `filename` character set (strings/ctype-utf8.c,
// my_wc_mb_filename). [0-9A-Za-z_] stay as they are; letters of a few Unicode blocks become `@`
// and two characters; every other character becomes `@` and four hex digits of its code point
// (`$` → `@0024`, `.` → `@002e`, `-` → `@002d`). So no encoded name holds `/`, `.` or `..`.

const SAFE = /^[0-9A-Za-z_]$/;

/**
 * The two-character codes of the letter blocks, two characters per code point from `first`, `..`
 * where the block has no letter code (those get the four-hex-digit form). Generated from MariaDB
 * 10.11 itself with `CAST(CONVERT(CHAR(n USING utf32) USING filename) AS BINARY)` for every code
 * point of the blocks; test/integration/table-jobs.test.ts checks names against the server.
 */
const LETTER_BLOCKS: ReadonlyArray<{ first: number; last: number; codes: string }> = [
  { first: 0x00c0, last: 0x05ff, codes:
    '0G0H0I0J0K0L0M0N0O0P0Q0R0S0T0U0V0W0X0Y0Z1G1H1I..1K1L1M1N1O1P1Q1j0g0h0i0j0k0l0m0n0o0p0q0r0s0t0u0v' +
    '0w0x0y0z1g1h1i..1k1l1m1n1o1p1q1r1S1s1T1t1U1u1V1v1W1w1X1x1Y1y1Z1z2G2g2H2h2I2i2J2j2K2k2L2l2M2m2N2n' +
    '2O2o2P2p2Q2q2R2r2S2s2T2t2U2u2V2v..2w2X2x2Y2y2Z2z3g3H3h3I3i3J3j3K3k3L3l3M3m3N3n3O3o3p3Q3q3R3r3S3s' +
    '3T3t3U3u3V3v3W3w3X3x3Y3y3Z3z4G4g4H4h4I4i4J4j4K4k4L4l4M4m4N4n4O4o4P4p4Q4q4R4r4S4s1R4T4t4U4u4V4v4w' +
    'gaQfHahaIaiaRfJajaTfUfKakalaZbWfYfMamaJgMgnaSgRgOaoapaqaYgHhraKhSasaTataUauaVhVavaYhwaxaYayaJiZa' +
    'zaLiMiGbgbHbhbTiIbibjbkbNbnbmb..........Ob..obPb..pbQb..qbRbrbSbsbTbtbUbubVbvbWbwbXbxbYbybzbGcgc' +
    'HchcIcicJcjcKckcLclcMcmcNcncOcocpcQc..qcRcrcNa..ScscTctcUcucVcvcWcwcXcxcYcycZczcGdgdHdhdIdidJdjd' +
    'KdkdLdldMdmdNdndOdodPdpdQdqdRdrdRasdTdtdUdudVdvdWdwdXdxdYdydZdzdGegeHeheiejekelemeneOePepePaQere' +
    'seVi............................nfofpfqfrfsftfufvfwfxfyfzfgghgigjgkglgmgngogpgqgrgsgtgugvgwgxgyg' +
    'zgghhhihjhkhlhmhnhohphqhrhshthuhvhwhxhyhzhgihiiijikiliminioipiqirisitiuiviwixiyizigjhjijjjkjljmj' +
    'njojpjqjrjsjtjujvjwjxjyjzjgkhkik................................................................' +
    '................................................................................................' +
    '................................................................................................' +
    '................................................................................................' +
    '............................................................................6G..6H6I6J..7S..7T7U' +
    '5y6L7W6N6O6P6Q6R7X6T8W6V6W6X6Y6Z8I7H..8Y7K7L8H7N7O7P7Q7R6g6h6i6j6k6l6m6n6o6p6q6r6s6t6u6v6w6x6y6z' +
    '7g7h7i7j7k7l7m7n7o7p7q7r7s7t7u..7w7x7Y7Z8G8h8i8j..8k8L8l8M8m8N8n8O8o8P8p8Q8q8R8r8S8s8T8t8U8u8V8v' +
    '8w8x8y8z..9g9h..9i....9j9k9L9M9NS1T1U1V1W1X1Y1Z1G2H2I2J2K2L2M2N2G0H0I0J0K0L0M0N0O0P0Q0R0S0T0U0V0' +
    'W0X0Y0Z0G1H1I1J1K1L1M1N1O1P1Q1R1g0h0i0j0k0l0m0n0o0p0q0r0s0t0u0v0w0x0y0z0g1h1i1j1k1l1m1n1o1p1q1r1' +
    's1t1u1v1w1x1y1z1g2h2i2j2k2l2m2n2O2o2P2p2Q2q2R2r2S2s2T2t2U2u2V2v2W2w2X2x2Y2y2Z2z2G3g3H3h3I3i3J3j3' +
    'K3k3................M3m3N3n3O3o3P3p3Q3q3R3r3S3s3T3t3U3u3V3v3W3w3X3x3Y3y3Z3z3G4g4H4h4I4i4J4j4K4k4' +
    'L4l4M4m4N4n4O4o4P4p4Q4q4R4r4S4s4T4U4u4V4v4W4w4X4x4Y4y4Z4z4G5g5..I5i5J5j5K5k5L5l5M5m5N5n5O5o5P5p5' +
    'Q5q5R5r5S5s5T5t5U5u5V5v5W5w5X5x5Y5y5Z5z5G6g6H6h6I6i6............P6p6Q6q6R6r6S6s6T6t6U6u6V6v6W6w6' +
    '..................................................................H7I7J7K7L7M7N7O7P7Q7R7S7T7U7V7' +
    'W7X7Y7Z7G8H8I8J8K8L8M8N8O8P8Q8R8S8T8U8V8W8X8......................h7i7j7k7l7m7n7o7p7q7r7s7t7u7v7' +
    'w7x7y7z7g8h8i8j8k8l8m8n8o8p8q8r8s8t8u8v8w8x8....................................................' +
    '................................................................................................' +
    '................................................................................................' },
  { first: 0x1e00, last: 0x1fff, codes:
    'GlglHlhlIlilJljlKlklLlllMlmlNlnlOlolPlplQlqlRlrlSlslTltlUlulVlvlWlwlXlxlYlylZlzlGmgmHmhmImimJmjm' +
    'KmkmLmlmMmmmNmnmOmomPmpmQmqmRmrmSmsmTmtmUmumVmvmWmwmXmxmYmymZmzmGngnHnhnIninJnjnKnknLnlnMnmnNnnn' +
    'GponPnpnQnqnRnrnSnsnTntnUnunVnvnWnwnXnxnYnynZnznGogoHohoIoioJojoKokoLoloMomoNonoOoooPopoQoqoRoro' +
    'SosoTotoUouovowoxoyozogp........LplpMpmpNpnpOpopPpppQpqpRprpSpspTptpUpupVpvpWpwpXpxpYpypZpzpGqgq' +
    'HqhqIqiqJqjqKqkqLqlqMqmqNqnqOqoqPqpqQqqqRqrqSqsqTqtqUquqVqvqWqwqXqxqYqyqZqzqGrgrHrhrIrirJrjrKrkr' +
    'LrlrMrmrNrnrOrorPrpr............gshsisjskslsmsnsGsHsIsJsKsLsMsNsospsqsrsssts....OsPsQsRsSsTs....' +
    'yszsgthtitjtktltYsZsGtHtItJtKtLtmtntotptqtrtstttMtNtOtPtQtRtStTtutvtwtxtytzt....UtVtWtXtYtZt....' +
    'kulumunuoupuquru..Lu..Nu..Pu..RuwuxuyuzugvhvivjvWuXuYuZuGvHvIvJvkvlvmvnvovpvqvrvsvtvuvvvwvxv....' +
    'gwhwiwjwkwlwmwnwGwHwIwJwKwLwMwNwowpwqwrwswtwuwvwOwPwQwRwSwTwUwVwwwxwywzwgxhxixjxWwXwYwZwGxHxIxJx' +
    'kxlxmxnxox..qxrxKxLxKvLvNx..........sxtxux..wxxxMvNvOvPvTx......yxzxgyhy....kylyYxZxQvRv........' +
    'nyoypyqyrysytyuyNyOyUvVvSy..........xyyy....hzizSvTvWvXvYy......' },
  { first: 0x2160, last: 0x217f, codes:
    'G9H9I9J9K9L9M9N9O9P9Q9R9S9T9U9V9g9h9i9j9k9l9m9n9o9p9q9r9s9t9u9v9' },
  { first: 0x24b0, last: 0x24ef, codes:
    '............@A@B@C@D@E@F@G@H@I@J@K@L@M@N@O@P@Q@R@S@T@U@V@W@X@Y@Z@a@b@c@d@e@f@g@h@i@j@k@l@m@n@o@p' +
    '@q@r@s@t@u@v@w@x@y@z............' },
  { first: 0xff20, last: 0xff5f, codes:
    '..A@B@C@D@E@F@G@H@I@J@K@L@M@N@O@P@Q@R@S@T@U@V@W@X@Y@Z@............a@b@c@d@e@f@g@h@i@j@k@l@m@n@o@' +
    'p@q@r@s@t@u@v@w@x@y@z@..........' },
];

function letterCode(cp: number): string | null {
  for (const block of LETTER_BLOCKS) {
    if (cp < block.first || cp > block.last) continue;
    const code = block.codes.slice((cp - block.first) * 2, (cp - block.first) * 2 + 2);
    return code === '..' ? null : code;
  }
  return null;
}

/** The name as the server writes it on disk (directory of a database, file of a table). */
export function filenameEncode(name: string): string {
  let out = '';
  for (const ch of name) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    const cp = ch.codePointAt(0)!;
    const letter = letterCode(cp);
    out += letter !== null ? `@${letter}` : `@${cp.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** `<dataDir>/<encoded db>/<encoded table><ext>`, the file of a file-per-table InnoDB table. */
export function tableFile(dataDir: string, db: string, table: string, ext: '.ibd' | '.cfg'): string {
  return path.join(dataDir, filenameEncode(db), filenameEncode(table) + ext);
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFilters, type Adaptor } from '../src/snapshotter/filters.js';
import { isSgError } from '../src/errors.js';

// An object shaped like a snapshot Info, seen through a filter adaptor.
function adaptor(fields: Record<string, string>, labels: Record<string, string>): Adaptor {
  return (path) => {
    if (path[0] === 'labels') {
      const k = path.slice(1).join('.');
      return Object.hasOwn(labels, k) ? [labels[k]!, true] : ['', false];
    }
    const v = fields[path[0]!];
    return v === undefined ? ['', false] : [v, true];
  };
}

const snap = adaptor(
  { kind: 'committed', name: 'default/3/sha256:abc', parent: '' },
  { 'containerd.io/snapshot.ref': 'sha256:abc', l: '2', 'with space': 'x y', 'a.b': 'dots' },
);
const matches = (...filters: string[]): boolean => parseFilters(filters)(snap);

test('no filter, and an empty filter string, match everything', () => {
  assert.equal(matches(), true);
  assert.equal(matches(''), true);
});

test('equality, inequality and presence', () => {
  assert.equal(matches('kind==committed'), true);
  assert.equal(matches('kind==active'), false);
  assert.equal(matches('kind!=active'), true);
  assert.equal(matches('labels.l'), true);
  assert.equal(matches('labels.missing'), false);
  assert.equal(matches('labels.missing!=x'), true, '!= matches an absent field, as containerd');
  assert.equal(matches('labels.missing==""'), false, '== needs the field present');
});

test('parent=="" and parent!="" tell base snapshots from the rest', () => {
  assert.equal(matches('parent==""'), true);
  assert.equal(matches('parent!=""'), false);
});

test('values may contain ":" "/" "." "=" (the scanner reads a value up to "," or space)', () => {
  assert.equal(matches('name==default/3/sha256:abc'), true);
  assert.equal(matches('labels.l==2=2'), false);
});

test('quoted label keys hold dots and spaces; quoted values unescape Go-style', () => {
  assert.equal(matches('labels."containerd.io/snapshot.ref"==sha256:abc'), true);
  assert.equal(matches('labels."with space"=="x y"'), true);
  assert.equal(matches('labels."a.b"==dots'), true);
  assert.equal(matches('labels.a.b==dots'), true, 'unquoted dotted path joins with "."');
  assert.equal(matches('labels."with space"=="x\\x20y"'), true);
  assert.equal(matches('labels.l=="\\u0032"'), true);
});

test("containerd's remote-snapshot lookup: ref label and parent, comma = AND", () => {
  assert.equal(matches('labels."containerd.io/snapshot.ref"==sha256:abc,parent==""'), true);
  assert.equal(matches('labels."containerd.io/snapshot.ref"==sha256:abc,parent==p'), false);
});

test('several filters are OR-ed', () => {
  assert.equal(matches('kind==active', 'labels.l==2'), true);
  assert.equal(matches('kind==active', 'labels.l==3'), false);
});

test('~= matches a regular expression, also written /re/ or |re|', () => {
  assert.equal(matches('name~=sha256:a'), true);
  assert.equal(matches('name~=/^default\\/[0-9]+\\//'), true);
  assert.equal(matches('name~=|ABC$|'), false);
  assert.equal(matches('name~="(?i)ABC$"'), true);
});

test('malformed filters are InvalidArgument, with the position marked', () => {
  for (const bad of ['kind=active', 'labels.', '"unterminated', 'kind==active,', 'name===x', 'a==b c', 'labels./x/==1', 'name~=(']) {
    assert.throws(
      () => parseFilters([bad]),
      (err: unknown) => isSgError(err, 'INVALID_ARGUMENT') && err.message.startsWith('filters: parse error'),
      bad,
    );
  }
});

#!/usr/bin/env node
// Verify one Sigstore bundle as cosign v3 does for a key-signed image signature with no
// transparency log (`cosign verify --key KEY --insecure-ignore-tlog`), using sigstore-js:
//   node verify-bundle.js BUNDLE.json KEY.pem sha256:DIGEST
// The bundle must parse as a v0.3 bundle, its DSSE signature must verify under KEY (found by
// cosign's key hint, base64(SHA-256(SPKI DER))), and the in-toto statement must be cosign's
// sign predicate with the image digest as a subject. Prints the statement on success; exits 1
// with the reason otherwise.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON, assertBundleLatest } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function fail(msg) {
  process.stderr.write(`verify-bundle: ${msg}\n`);
  process.exit(1);
}

const [bundlePath, keyPath, digest] = process.argv.slice(2);
if (!bundlePath || !keyPath || !digest) fail('usage: verify-bundle.js BUNDLE.json KEY.pem sha256:DIGEST');

try {
  const json = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));
  if (json.mediaType !== 'application/vnd.dev.sigstore.bundle.v0.3+json') fail(`not a v0.3 bundle: ${json.mediaType}`);
  const bundle = bundleFromJSON(json);
  assertBundleLatest(bundle);
  const der = crypto.createPublicKey(fs.readFileSync(keyPath)).export({ type: 'spki', format: 'der' });
  const hint = crypto.createHash('sha256').update(der).digest('base64');
  const trust = toTrustMaterial(
    { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] },
    { [hint]: { rawBytes: der } },
  );
  // No Rekor, no TSA, no certificate: the thresholds cosign's --insecure-ignore-tlog implies.
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));

  if (bundle.content.$case !== 'dsseEnvelope') fail('not a DSSE bundle');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== 'application/vnd.in-toto+json') fail(`payload type ${env.payloadType}`);
  const statement = JSON.parse(Buffer.from(env.payload).toString('utf8'));
  if (statement._type !== 'https://in-toto.io/Statement/v1') fail(`statement type ${statement._type}`);
  if (statement.predicateType !== 'https://sigstore.dev/cosign/sign/v1') fail(`predicate ${statement.predicateType}`);
  const [alg, hex] = digest.split(':');
  if (!(statement.subject || []).some((s) => s.digest && s.digest[alg] === hex)) {
    fail(`no subject names ${digest}`);
  }
  process.stdout.write(JSON.stringify(statement) + '\n');
} catch (e) {
  fail(e && e.message ? `${e.code || ''} ${e.message}`.trim() : String(e));
}

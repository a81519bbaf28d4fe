// The message layer's pure parts: the rpc envelope (docs/protocol.md), json(), Standard Schema validation.
import { expect } from 'chai';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, MAX_REQUEST_ID } from '../lib/messages/envelope.js';
import { json } from '../lib/messages/codec.js';
import { InvalidMessageError, validate, type StandardSchemaV1 } from '../lib/messages/schema.js';

/** A Standard Schema written by hand: an object with numbers `a` and `b`, checked sync or async. */
function addSchema(async = false): StandardSchemaV1<unknown, { a: number; b: number }> {
  const check = (value: unknown) => {
    const v = value as Record<string, unknown> | null;
    const issues = ['a', 'b'].filter((k) => typeof v?.[k] !== 'number').map((k) => ({ message: 'expected a number', path: [k] }));
    return issues.length > 0 ? { issues } : { value: { a: v!.a as number, b: v!.b as number } };
  };
  return { '~standard': { version: 1, vendor: 'test', validate: (value) => (async ? Promise.resolve(check(value)) : check(value)) } };
}

describe('rpc envelope', () => {
  it('writes the worked example of docs/protocol.md byte for byte', () => {
    const body = Buffer.from('{"a":1,"b":2}');
    expect(encodeEnvelope(EnvelopeKind.request, 300, body).toString('hex')).to.equal(`01ac02${body.toString('hex')}`);
    expect(encodeEnvelope(EnvelopeKind.message, 0, body).toString('hex')).to.equal(`00${body.toString('hex')}`);
    expect(encodeEnvelope(EnvelopeKind.cancel, 1, Buffer.alloc(0)).toString('hex')).to.equal('0401');
  });

  it('round-trips every kind and ids at every varint length up to the largest', () => {
    for (const id of [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 35 + 7, MAX_REQUEST_ID]) {
      for (const kind of [EnvelopeKind.request, EnvelopeKind.reply, EnvelopeKind.error]) {
        const decoded = decodeEnvelope(encodeEnvelope(kind, id, Buffer.from('x')));
        expect([decoded.kind, decoded.id, String(decoded.body)], `kind ${kind} id ${id}`).to.deep.equal([kind, id, 'x']);
      }
    }
  });

  it('refuses broken frames with ERR_MALFORMED_MESSAGE', () => {
    for (const [hex, reason] of [
      ['', /empty frame/], ['0c', /unknown kind 12/], ['0180', /runs past the end/],
      ['01ffffffffffffff01', /longer than 7 bytes/], ['040178', /a cancel carries no body/],
    ] as const) {
      expect(() => decodeEnvelope(Buffer.from(hex, 'hex')), hex).to.throw(reason).with.property('code', 'ERR_MALFORMED_MESSAGE');
    }
  });
});

describe('json() and schemas', () => {
  it('encodes and decodes UTF-8 JSON, one value per frame', () => {
    const codec = json();
    expect(codec.encode({ text: 'héllo', n: [1, 2] })).to.equal('{"text":"héllo","n":[1,2]}');
    expect(codec.decode(Buffer.from('{"text":"héllo"}'))).to.deep.equal({ text: 'héllo' });
    expect(() => codec.encode(undefined)).to.throw().with.property('code', 'ERR_INVALID_PAYLOAD');
  });

  for (const async of [false, true]) {
    it(`validates with ${async ? 'an async' : 'a sync'} Standard Schema: the output, or ERR_INVALID_MESSAGE with the issues`, async () => {
      const schema = addSchema(async);
      const ok = validate(schema, { a: 1, b: 2 });
      expect(ok instanceof Promise, 'a promise only for an async validator').to.equal(async);
      expect(await ok).to.deep.equal({ a: 1, b: 2 });
      const error = await Promise.resolve().then(() => validate(schema, { a: 'one' })).then(() => undefined, (e: unknown) => e);
      expect(error).to.be.instanceOf(InvalidMessageError);
      expect(error).to.include({ code: 'ERR_INVALID_MESSAGE', message: 'invalid message: a: expected a number; b: expected a number' });
      expect((error as InvalidMessageError).issues).to.deep.equal([{ path: 'a', message: 'expected a number' }, { path: 'b', message: 'expected a number' }]);
    });
  }

  it('refuses a schema that is not a Standard Schema', () => {
    expect(() => json({ schema: { parse: () => 1 } as never })).to.throw(/json: schema must be a Standard Schema/).with.property('code', 'ERR_INVALID_OPTION');
  });
});

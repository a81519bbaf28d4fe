// The message layer's pure parts: the rpc envelope (docs/protocol.md), json(), Standard Schema validation.
import { expect } from 'chai';
import { decodeCredit, decodeEnvelope, encodeCredit, encodeEnvelope, EnvelopeKind, MAX_REQUEST_ID } from '../lib/messages/envelope.js';
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

  it('writes the stream, header and upload examples of docs/protocol.md byte for byte, and reads them back', () => {
    const call = encodeEnvelope(EnvelopeKind.stream, 5, '{"limit":3}', { 'pulsar-timeout': '2000' });
    expect(call.toString('hex')).to.equal('8505140e70756c7361722d74696d656f757404323030307b226c696d6974223a337d');
    expect(decodeEnvelope(call)).to.deep.include({ kind: EnvelopeKind.stream, id: 5, headers: { 'pulsar-timeout': '2000' } });
    expect(encodeCredit(EnvelopeKind.credit, 5, 16).toString('hex')).to.equal('080510');
    expect(decodeCredit(decodeEnvelope(encodeCredit(EnvelopeKind.uploadCredit, 6, 16)).body)).to.equal(16);
    expect(encodeEnvelope(EnvelopeKind.item, 5, '{"id":1}').toString('hex')).to.equal('06057b226964223a317d');
    expect(encodeEnvelope(EnvelopeKind.end, 5, '').toString('hex')).to.equal('0705');
    expect(encodeEnvelope(EnvelopeKind.message, 0, '"hi"', { 'x-user': 'ann' }).toString('hex')).to.equal('800b06782d7573657203616e6e22686922');
    expect(encodeEnvelope(EnvelopeKind.uploadItem, 6, '2').toString('hex')).to.equal('090632');
    expect(encodeEnvelope(EnvelopeKind.uploadEnd, 6, '').toString('hex')).to.equal('0a06');
  });

  it('refuses broken header blocks and credits with ERR_MALFORMED_MESSAGE', () => {
    for (const [hex, reason] of [
      ['8001', /header block runs past the end/], ['8004016105622222', /header 'a''s value runs past the header block/],
      ['8006016101310161013200', /header 'a' twice/], ['80040141013100', /not a lowercase ASCII token/],
      ['800301618022', /header 'a''s value length runs past the end/], ['8004016101ff', /not UTF-8/], ['070501', /a stream end carries no body/],
    ] as const) {
      expect(() => decodeEnvelope(Buffer.from(hex, 'hex')), hex).to.throw(reason).with.property('code', 'ERR_MALFORMED_MESSAGE');
    }
    expect(() => decodeEnvelope(Buffer.from('80050161016122', 'hex'), { count: 32, bytes: 4 })).to.throw(/a header block of 5 bytes \(at most 4\)/);
    expect(() => decodeEnvelope(Buffer.from('800801610131016201322222', 'hex'), { count: 1, bytes: 64 })).to.throw(/more than 1 headers/);
    expect(() => decodeCredit(Buffer.from('00', 'hex'))).to.throw(/one varint above 0/);
    expect(() => decodeCredit(Buffer.from('0101', 'hex'))).to.throw(/one varint above 0/);
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

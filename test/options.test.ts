// Every options object the package takes refuses a key it does not know, naming the closest known one:
// `new PulsarServer({ prot: 9000 })` must not quietly listen on 8080.
import { expect } from 'chai';
import { DelimiterCodec, IdleHeartbeat, LengthPrefixedCodec, LineCodec, PulsarClient, PulsarCluster, PulsarError, PulsarServer, VarintCodec } from '../lib/index.js';
import { PulsarMetrics, serveMetrics } from '../lib/metrics/index.js';

/** Expects `make` to throw ERR_INVALID_OPTION with exactly `message`. */
function refuses(make: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    make();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, message).to.be.instanceOf(PulsarError);
  expect((thrown as PulsarError).code).to.equal('ERR_INVALID_OPTION');
  expect((thrown as PulsarError).message).to.equal(message);
}

describe('unknown options', () => {
  it('are refused with ERR_INVALID_OPTION naming the closest known option, in every constructor', () => {
    refuses(() => new PulsarServer({ prot: 9000 } as never), "PulsarServer: unknown option 'prot' (did you mean 'port'?)");
    refuses(() => new PulsarServer({ maxBufferBytes: 1 } as never), "PulsarServer: unknown option 'maxBufferBytes' (did you mean 'maxBufferedBytes'?)");
    refuses(() => new PulsarServer({ proxyProtocol: { timout: 5 } } as never), "PulsarServer proxyProtocol: unknown option 'timout' (did you mean 'timeout'?)");
    refuses(() => new LengthPrefixedCodec({ lengthAdjustmnt: -2 } as never), "LengthPrefixedCodec: unknown option 'lengthAdjustmnt' (did you mean 'lengthAdjustment'?)");
    refuses(() => new VarintCodec({ onTooLoong: 'discard' } as never), "VarintCodec: unknown option 'onTooLoong' (did you mean 'onTooLong'?)");
    refuses(() => new LineCodec({ delimiter: '\0' } as never), "LineCodec: unknown option 'delimiter'");
    refuses(() => new DelimiterCodec({ delimiter: '' }), "DelimiterCodec: delimiter must hold at least one byte, got '' (string)");
    refuses(() => new LengthPrefixedCodec({ maxFrameLenght: 10 } as never), "LengthPrefixedCodec: unknown option 'maxFrameLenght' (did you mean 'maxFrameLength'?)");
    refuses(() => new IdleHeartbeat({ intervall: 10 } as never), "IdleHeartbeat: unknown option 'intervall' (did you mean 'interval'?)");
    refuses(() => new PulsarClient({ hots: 'x' } as never), "PulsarClient: unknown option 'hots' (did you mean 'host'?)");
    refuses(() => new PulsarServer({ maxFrameLength: 1024 } as never), "PulsarServer: unknown option 'maxFrameLength' (it is the codec's: codec: new LengthPrefixedCodec({ maxFrameLength }))");
    refuses(() => new PulsarClient({ maxFrameLength: 1024 } as never), "PulsarClient: unknown option 'maxFrameLength' (it is the codec's: codec: new LengthPrefixedCodec({ maxFrameLength }))");
    refuses(() => new PulsarClient({ reconnect: { maxDelays: 1 } } as never), "PulsarClient reconnect: unknown option 'maxDelays' (did you mean 'maxDelay'?)");
    refuses(() => new PulsarCluster({ worker: 2 } as never), "PulsarCluster: unknown option 'worker' (did you mean 'workers'?)");
    const server = new PulsarServer();
    refuses(() => new PulsarMetrics(server, { registy: undefined } as never), "PulsarMetrics: unknown option 'registy' (did you mean 'registry'?)");
  });

  it('are refused by serveMetrics() as a rejection', async () => {
    const error = await serveMetrics(async () => '', { prot: 1 } as never).then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(PulsarError).with.property('message', "serveMetrics: unknown option 'prot' (did you mean 'port'?)");
  });
});

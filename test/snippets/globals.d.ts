// What the documentation's snippets take as given: an existing server, connection, codec… A snippet that
// declares one of these names itself shadows it.
declare const server: import('pulsar').PulsarServer;
declare const conn: import('pulsar').Connection;
declare const codec: import('pulsar').FrameCodec;
declare const reference: import('pulsar/testing').ReferenceFormat;
declare function lookup(key: string): Promise<Buffer>;
declare function userOf(token: string): Promise<string>;
declare const token: string;

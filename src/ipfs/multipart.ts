/**
 * A multipart/form-data body with one file part, generated as the content streams in:
 * `add` of a multi-GiB layer never holds more than one chunk of it in memory.
 */
import { randomBytes } from 'node:crypto';

export interface MultipartBody {
  readonly contentType: string;
  readonly body: AsyncIterable<Uint8Array | string>;
}

export function singleFileMultipart(content: AsyncIterable<Uint8Array> | Uint8Array): MultipartBody {
  const boundary = `sgipfs-${randomBytes(16).toString('hex')}`;
  async function* body(): AsyncGenerator<Uint8Array | string> {
    yield `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    if (content instanceof Uint8Array) yield content;
    else yield* content;
    yield `\r\n--${boundary}--\r\n`;
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: body() };
}

/**
 * The one error type of the GGUF export. `code` lets the UI pick a remedy; the message
 * names the file, tensor or field involved and says what to do.
 */
export type GgufExportErrorCode =
  | "unsupported_architecture"
  | "missing_file"
  | "bad_config"
  | "missing_tensor"
  | "tensor_shape"
  | "tensor_dtype"
  | "tokenizer"
  | "disk_space"
  | "bad_option";

export class GgufExportError extends Error {
  constructor(
    readonly code: GgufExportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "GgufExportError";
  }

  static is(error: unknown, code?: GgufExportErrorCode): error is GgufExportError {
    return error instanceof GgufExportError && (code === undefined || error.code === code);
  }
}

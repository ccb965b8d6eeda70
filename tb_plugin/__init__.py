"""The Attention Flows TensorBoard plugin (installed as the ``attnflows_tb`` package)."""

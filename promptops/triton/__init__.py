"""The model server: the local `tritonserver` launcher (`launcher`), the gRPC client (`client`), the
Hugging Face cache layout both environments share (`hfcache`) and the CPU `vllm` backend that runs inside
Triton (`backend/vllm/model.py`, never imported by promptops)."""

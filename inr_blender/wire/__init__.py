"""The wire between the Blender side and the backend worker: the frame format and message kinds
(:mod:`.protocol`), the client that starts or reaches a worker (:mod:`.client`, run inside Blender) and
the worker's job loop (:mod:`.worker`). Nothing here imports bpy or torch; the worker imports the jobs
(and with them torch) only when it starts serving.
"""

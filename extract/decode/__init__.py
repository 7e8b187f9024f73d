"""Decoding and sampling: which frames to take, and reading exactly those.

The packet index (:mod:`.packet_index`, PyAV, no decoding), the decode planner
(:mod:`.decode_plan`) and the planned reader (:mod:`.video_reader`); the frame
selection modes (:mod:`.sampling`, :mod:`.motion`, :mod:`.shots`,
:mod:`.signal_scan`); face crops (:mod:`.faces`); the frames' size and framing and the one crop rule
(:mod:`.geometry`); ``read_frames`` over videos,
frame folders and image clips (:mod:`.frames`); ``FrameSpec`` (:mod:`.framespec`);
sequential decoding of streams (:mod:`.frame_stream`). May import
:mod:`vidseq.extract.sources` (image-clip loaders) and :mod:`vidseq.errors`;
never a network, never the cache.
"""

"""Gradio app: page layout and event wiring only; the work lives in ``detectors.service``."""
from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Cached example results go to the temp folder, not into the working directory.
os.environ.setdefault("GRADIO_EXAMPLES_CACHE", os.path.join(tempfile.gettempdir(), "deepfake-detectors-examples", "cache"))

import gradio as gr  # noqa: E402

from detectors import service  # noqa: E402
from detectors.examples import build_examples  # noqa: E402
from detectors.media import DEFAULT_LIMITS  # noqa: E402
from detectors.pipeline import AGGREGATION_RULES  # noqa: E402

TITLE = "Deepfake detectors, side by side"
MODEL_EVENTS = "models"  # the one concurrency group of every event that runs a detector (see build_demo)
PAGE_MAX_FRAMES = 64  # the slider's top; the CLI and the API's limit is DEFAULT_LIMITS.max_sampled_frames
CACHE_SECONDS = 600  # uploads and derived files are deleted after at most 1.5x this
CSS = """
/* Face crops as fixed-size thumbnails: Gradio stretches a lone gallery item to the full width. */
.face-gallery .grid-container {grid-template-columns: repeat(auto-fill, 150px) !important;
                               grid-template-rows: none !important; grid-auto-rows: 150px !important}
/* Tables fit their column: narrow phones wrap cells instead of cutting the last column off. */
.fit-table table {table-layout: auto !important; width: 100% !important}
.fit-table th, .fit-table td {white-space: normal !important; word-break: break-word; min-width: 0 !important}
@media (max-width: 640px) { .gradio-container {padding: 4px !important}
                            .fit-table th, .fit-table td {font-size: 12px !important; padding: 2px 4px !important} }
.tab-redirect {position: fixed; top: 12px; left: 50%; transform: translateX(-50%); z-index: 1000; padding: 8px 14px;
               background: #eef4ff; border: 1px solid #9db7f0; border-radius: 8px; font-size: 14px}
"""
# A file dropped or chosen on the wrong tab: the upload fields only take their own kind, and Gradio would refuse
# the file with a type error. Catch it first, switch to the right tab and hand the file to that tab's field.
REDIRECT_JS = """
<script>
(() => {
  const fields = {image: "#image-upload", video: "#video-upload"};
  const tabs = {image: "Image", video: "Video"};
  const kindOf = (file) => file && (file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "image" : null);
  const fieldOf = (node) => Object.keys(fields).find((k) => node instanceof Element && node.closest(fields[k]));
  function tell(text) {
    const note = document.createElement("div");
    note.className = "tab-redirect"; note.setAttribute("role", "status"); note.textContent = text;
    document.body.appendChild(note); setTimeout(() => note.remove(), 6000);
  }
  function hand(file, kind) {
    const tab = [...document.querySelectorAll('button[role="tab"]')].find((b) => b.textContent.trim() === tabs[kind]);
    if (tab) tab.click();
    tell(`That file is ${kind === "video" ? "a video" : "a picture"}: it goes in the ${tabs[kind]} tab, so it was moved there.`);
    let tries = 0;
    const give = () => {
      const input = document.querySelector(`${fields[kind]} input[type=file]`);
      if (!input) { if (++tries < 50) setTimeout(give, 100); return; }
      const transfer = new DataTransfer(); transfer.items.add(file);
      input.files = transfer.files;
      input.dispatchEvent(new Event("change", {bubbles: true}));
    };
    setTimeout(give, 150);
  }
  function intercept(event, files) {
    const field = fieldOf(event.target), file = files && files[0], kind = kindOf(file);
    if (!field || !kind || kind === field) return;
    event.preventDefault(); event.stopImmediatePropagation();
    if (event.target instanceof HTMLInputElement) event.target.value = "";
    hand(file, kind);
  }
  document.addEventListener("change", (e) => e.target instanceof HTMLInputElement && e.target.type === "file" && intercept(e, e.target.files), true);
  document.addEventListener("drop", (e) => intercept(e, e.dataTransfer && e.dataTransfer.files), true);
})();
</script>
"""


def face_views_block(tab: str):
    """The per-face views shared by both tabs; returns the output components in the service's order."""
    gallery = gr.Gallery(label="Faces (the crops the detectors saw)", columns=6, height=190, object_fit="contain",
                         preview=False, allow_preview=True, elem_classes=["face-gallery"])
    selector = gr.Dropdown(label="Face shown below", choices=[], visible=False, interactive=True)
    table = gr.Dataframe(headers=service.TABLE_HEADERS, label="Verdicts: fake at or above the first edge, real below the second, "
                         "uncertain in between (calibrated per detector)", interactive=False, wrap=True, elem_id=f"{tab}-verdicts",
                         elem_classes=["fit-table"])
    with gr.Row(equal_height=True):
        heatmap = gr.Plot(label="2D FFT log-magnitude")
        profile = gr.Plot(label="Radial spectrum profile")
    with gr.Row(equal_height=True):
        error = gr.Plot(label="Re-synthesis error map", elem_id=f"{tab}-error-map")
        # Always on the page, empty until the box is ticked: a gallery that appears beside a drawn plot would
        # halve the row under the plot without Plotly redrawing it (the map lost its left part and colour bar).
        cams = gr.Gallery(label="Grad-CAM: where each detector's fake logit looks (tick the box to compute)", columns=4,
                          height=220, preview=False, elem_id=f"{tab}-cams")
    return gallery, selector, table, heatmap, profile, error, cams


def join_group(demo: gr.Blocks, event, concurrency_id: str, concurrency_limit: int) -> None:
    """Put an event Gradio wired itself (an examples gallery's) into a concurrency group: its listener takes no
    concurrency arguments, so they are set on the event's function as Gradio stores it."""
    function = demo.fns[event["id"]]
    function.concurrency_id, function.concurrency_limit = concurrency_id, concurrency_limit


def build_demo(concurrency: int = 2, max_queue: int = 32) -> gr.Blocks:
    """The page. ``concurrency``: model events (analyses, probes, Grad-CAM, first runs of the examples) running at
    once, all events together; ``max_queue``: requests that may wait."""
    examples = build_examples()
    # Gradio limits each event function on its own unless events share a concurrency id: without one, the
    # model events together would run several times ``concurrency`` model calls at once.
    model_event = dict(concurrency_id=MODEL_EVENTS, concurrency_limit=concurrency)
    # Gradio keeps cached example results in a CSV; a Plotly figure of a 256 x 256 spectrum is a field far over
    # the csv module's default 128 kB limit, which made every example fail when its cache was read back.
    csv.field_size_limit(2**31 - 1)
    # Privacy: uploads and what is derived from them (crops, plots) live in Gradio's temp folder and are
    # deleted within CACHE_SECONDS; nothing else is written (see README "Privacy").
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(CACHE_SECONDS // 2, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# {TITLE}\n{service.intro_markdown()}")
        with gr.Tab("Image", id="image-tab"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280) as image_controls:
                    image_in = service.raw_upload(gr.Image(label="Picture", type="filepath", elem_id="image-upload", sources=["upload", "clipboard", "webcam"]))
                    whole = gr.Checkbox(label="If no face is found, score the whole image", value=False)
                    image_cam = gr.Checkbox(label="Show Grad-CAM heatmaps (slower)", value=False)
                    image_go = gr.Button("Analyse", variant="primary", elem_id="image-analyse")
                    probe_go = gr.Button("Robustness probe (JPEG 75, half size)", elem_id="image-probe")
                with gr.Column(scale=2):
                    image_summary = gr.HTML(elem_id="image-summary")
                    image_provenance = gr.HTML(elem_id="image-provenance")
                    image_views = face_views_block("image")
                    probe_summary = gr.HTML()
                    probe_table = gr.Dataframe(headers=service.PROBE_HEADERS, label="Robustness probe", interactive=False, visible=False,
                                               wrap=True, elem_classes=["fit-table"])
                    with gr.Accordion("JSON report (what the API returns)", open=False):
                        image_json = gr.JSON(label="report")
            image_state = gr.State([])
            image_outputs = [image_summary, *image_views, image_json, image_state]
            with image_controls:  # examples go under the controls, but need the outputs to exist first
                image_examples = gr.Examples([[str(examples[0])], [str(examples[1])]], inputs=[image_in], fn=service.analyse_image_example,
                            outputs=[image_outputs[i] for i in service.EXAMPLE_OUTPUTS], cache_examples=True, cache_mode="lazy", elem_id="image-examples",
                            label="Examples: a real portrait and a self-blended fake we made from it (results cached on first use)")
        with gr.Tab("Video", id="video-tab"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280) as video_controls:
                    # The upload field holds the original for the analysis; the player beside it is display-only and
                    # gets a copy the browser can play (service.video_preview), so it never loads a clip it must
                    # refuse (AVI, HEVC) and never raises Gradio's "Video not playable" alarm.
                    video_in = service.raw_upload(gr.File(label="Video", file_types=["video"], elem_id="video-upload"))
                    video_player = gr.Video(label="Preview", interactive=False, elem_id="video-player")
                    video_note = gr.HTML(elem_id="video-note")
                    frames = gr.Slider(1, PAGE_MAX_FRAMES, value=16, step=1,
                                       label=f"Frames sampled evenly over the clip (up to {PAGE_MAX_FRAMES} here, "
                                             f"{DEFAULT_LIMITS.max_sampled_frames} with the scan command)")
                    rule = gr.Radio(list(AGGREGATION_RULES), value="mean", label="How frame scores become the video's score",
                                    info="mean: average of all frames. confident: confidently fake (or real) frames decide when there are enough of them.")
                    video_cam = gr.Checkbox(label="Show Grad-CAM heatmaps (slower)", value=False)
                    video_go = gr.Button("Analyse", variant="primary", elem_id="video-analyse")
                with gr.Column(scale=2):
                    video_summary = gr.HTML(elem_id="video-summary")
                    video_provenance = gr.HTML(elem_id="video-provenance")
                    timeline = gr.Plot(label="Timeline: P(fake) per sampled frame")
                    video_views = face_views_block("video")
                    with gr.Accordion("JSON report (what the API returns)", open=False):
                        video_json = gr.JSON(label="report")
            video_state = gr.State([])
            video_outputs = [video_summary, timeline, *video_views, video_json, video_state]
            with video_controls:
                video_examples = gr.Examples([[str(examples[2])]], inputs=[video_in], fn=service.analyse_video_example,
                            outputs=[video_outputs[i] for i in service.VIDEO_EXAMPLE_OUTPUTS], cache_examples=True, cache_mode="lazy", elem_id="video-examples",
                            label="Example: a real clip we wrote from the portrait (results cached on first use)")
        with gr.Tab("About the detectors", id="about-tab"):
            gr.Markdown(service.about_markdown())
            with gr.Accordion("Where each checkpoint was loaded from", open=False):
                gr.Markdown(service.detector_status())

        # Each analysis first empties its results, so a failure never leaves the previous file's result on the page.
        image_go.click(service.empty_image_outputs, None, image_outputs, api_name=False, queue=False).then(
            service.analyse_image, [image_in, whole, image_cam], image_outputs, api_name="detect_image", **model_event)
        video_go.click(service.empty_video_outputs, None, video_outputs, api_name=False, queue=False).then(
            service.analyse_video, [video_in, frames, rule, video_cam], video_outputs, api_name="detect_video", **model_event)
        probe_go.click(service.robustness_probe, [image_in, whole], [probe_summary, probe_table], api_name="robustness_probe", **model_event)
        # change, not upload: an example chosen from the gallery is shown in the player too, and a cleared field empties it.
        video_in.change(service.video_preview, video_in, [video_player, video_note], api_name=False)
        for source, views, state, cam in ((image_in, image_views, image_state, image_cam), (video_in, video_views, video_state, video_cam)):
            gallery, selector, *detail = views
            # Grad-CAM runs here when the box is ticked: a model event.
            selector.change(service.select_face, [state, selector, cam], detail, api_name=False, **model_event)
            cam.change(service.select_face, [state, selector, cam], detail, api_name=False, **model_event)
            # Another file: the previous one's faces can no longer be chosen (the example gallery fills the rest).
            source.change(service.forget_faces, None, [selector, state], api_name=False, queue=False)
        # Provenance is read as soon as a file is chosen, apart from the analysis: it shows even when the pixels fail.
        image_in.change(service.provenance_panel, image_in, image_provenance, api_name=False)
        video_in.change(service.provenance_panel, video_in, video_provenance, api_name=False)
        for cached in (image_examples, video_examples):  # an example's first use runs the models (then it is cached)
            join_group(demo, cached.cache_event, **model_event)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="public gradio.live link (local runs only)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="model events (analyses, probes, Grad-CAM) run at once, all together (default 2)")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait; more are refused politely (default 32)")
    args = parser.parse_args()
    # Unexpected failures reach the user as a short message; their tracebacks go here (see service.event_handler).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service.warm_up()  # load the models once and run them once, before the first request
    build_demo(args.concurrency, args.max_queue).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=DEFAULT_LIMITS.max_file_bytes,
        footer_links=["api"],
        css=CSS,
        head=REDIRECT_JS,
        show_error=True,  # failures before our handlers run reach the user as text, not a bare "Error"
    )


if __name__ == "__main__":
    main()

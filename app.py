"""Gradio app: page layout and event wiring only; the work lives in ``detectors.service``."""
from __future__ import annotations

import argparse
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
INTRO = (
    "Four published detectors (SpecXNet, SFIConv, Re-synthesis, MD-CSDNetwork), re-implemented and trained by us, "
    "score every face MTCNN finds. You see each detector's calibrated verdict, the ensemble's, how many agree, "
    "the face's Fourier spectrum against real faces and where super-resolution fails to re-create it. "
    "**A verdict is evidence, not proof.** Nothing you upload is kept."
)
CACHE_SECONDS = 600  # uploads and derived files are deleted after at most 1.5x this
CSS = """
/* Face crops as fixed-size thumbnails: Gradio stretches a lone gallery item to the full width. */
.face-gallery .grid-container {grid-template-columns: repeat(auto-fill, 150px) !important;
                               grid-template-rows: none !important; grid-auto-rows: 150px !important}
@media (max-width: 640px) { .gradio-container {padding: 4px !important} }
"""


def face_views_block(tab: str):
    """The per-face views shared by both tabs; returns the output components in the service's order."""
    gallery = gr.Gallery(label="Faces (the crops the detectors saw)", columns=6, height=190, object_fit="contain",
                         preview=False, allow_preview=True, elem_classes=["face-gallery"])
    selector = gr.Dropdown(label="Face shown below", choices=[], visible=False, interactive=True)
    table = gr.Dataframe(headers=service.TABLE_HEADERS, label="Verdicts (calibrated thresholds)", interactive=False, elem_id=f"{tab}-verdicts")
    with gr.Row(equal_height=True):
        heatmap = gr.Plot(label="2D FFT log-magnitude")
        profile = gr.Plot(label="Radial spectrum profile")
    with gr.Row(equal_height=True):
        error = gr.Plot(label="Re-synthesis error map")
        cams = gr.Gallery(label="Grad-CAM: where each detector's fake logit looks", columns=4, height=220, visible=False, preview=False)
    return gallery, selector, table, heatmap, profile, error, cams


def build_demo(concurrency: int = 2, max_queue: int = 32) -> gr.Blocks:
    examples = build_examples()
    # Privacy: uploads and what is derived from them (crops, plots) live in Gradio's temp folder and are
    # deleted within CACHE_SECONDS; nothing else is written (see README "Privacy").
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(CACHE_SECONDS // 2, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
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
                    image_views = face_views_block("image")
                    probe_summary = gr.HTML()
                    probe_table = gr.Dataframe(headers=service.PROBE_HEADERS, label="Robustness probe", interactive=False, visible=True)
                    with gr.Accordion("JSON report (what the API returns)", open=False):
                        image_json = gr.JSON(label="report")
            image_state = gr.State([])
            with image_controls:  # examples go under the controls, but need the outputs to exist first
                gr.Examples([[str(examples[0])], [str(examples[1])]], inputs=[image_in], fn=service.analyse_image_example,
                            outputs=[image_summary, *image_views, image_json], cache_examples=True, cache_mode="lazy",
                            label="Examples: a real portrait and a self-blended fake we made from it (results cached on first use)")
        with gr.Tab("Video", id="video-tab"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280) as video_controls:
                    video_in = gr.Video(label="Video", sources=["upload"], elem_id="video-upload")
                    frames = gr.Slider(1, min(64, DEFAULT_LIMITS.max_sampled_frames), value=16, step=1, label="Frames sampled evenly over the clip")
                    rule = gr.Radio(list(AGGREGATION_RULES), value="mean", label="How frame scores become the video's score",
                                    info="mean: average of all frames. confident: confidently fake (or real) frames decide when there are enough of them.")
                    video_cam = gr.Checkbox(label="Show Grad-CAM heatmaps (slower)", value=False)
                    video_go = gr.Button("Analyse", variant="primary", elem_id="video-analyse")
                with gr.Column(scale=2):
                    video_summary = gr.HTML(elem_id="video-summary")
                    timeline = gr.Plot(label="Timeline: P(fake) per sampled frame")
                    video_views = face_views_block("video")
                    with gr.Accordion("JSON report (what the API returns)", open=False):
                        video_json = gr.JSON(label="report")
            video_state = gr.State([])
            with video_controls:
                gr.Examples([[str(examples[2])]], inputs=[video_in], fn=service.analyse_video_example,
                            outputs=[video_summary, timeline, *video_views, video_json], cache_examples=True, cache_mode="lazy",
                            label="Example: a real clip we wrote from the portrait (results cached on first use)")
        with gr.Tab("About the detectors", id="about-tab"):
            gr.Markdown(service.about_markdown())
            with gr.Accordion("Where each checkpoint was loaded from", open=False):
                gr.Markdown(service.detector_status())

        image_go.click(service.analyse_image, [image_in, whole, image_cam], [image_summary, *image_views, image_json, image_state],
                       api_name="detect_image")
        video_go.click(service.analyse_video, [video_in, frames, rule, video_cam],
                       [video_summary, timeline, *video_views, video_json, video_state], api_name="detect_video")
        probe_go.click(service.robustness_probe, [image_in, whole], [probe_summary, probe_table], api_name="robustness_probe")
        for views, state, cam in ((image_views, image_state, image_cam), (video_views, video_state, video_cam)):
            gallery, selector, *detail = views
            selector.change(service.select_face, [state, selector, cam], detail, api_name=False)
            cam.change(service.select_face, [state, selector, cam], detail, api_name=False)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="public gradio.live link (local runs only)")
    parser.add_argument("--concurrency", type=int, default=2, help="analyses run at once (default 2)")
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
        show_error=True,  # failures before our handlers run reach the user as text, not a bare "Error"
    )


if __name__ == "__main__":
    main()

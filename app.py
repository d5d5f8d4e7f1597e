"""Gradio app: page layout and event wiring only; the work lives in ``detectors.service``."""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from detectors import service  # noqa: E402
from detectors.media import DEFAULT_LIMITS  # noqa: E402

TITLE = "Deepfake detectors, side by side"
INTRO = (
    "Upload a picture or a video. Faces are found with MTCNN; for each face you see the crop the detectors "
    "look at and its Fourier spectrum against the band where real faces lie."
)


def face_views_block():
    gallery = gr.Gallery(label="Face crops", columns=6, height=200, object_fit="contain", preview=False)
    selector = gr.Dropdown(label="Face shown below", choices=[], visible=False, interactive=True)
    table = gr.Dataframe(headers=service.TABLE_HEADERS, label="Verdicts (calibrated thresholds)", interactive=False)
    with gr.Row():
        heatmap = gr.Plot(label="2D FFT log-magnitude")
        profile = gr.Plot(label="Radial spectrum profile")
    state = gr.State([])
    return gallery, selector, table, heatmap, profile, state


def build_demo() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column(scale=1):
                    image_in = gr.Image(label="Picture", type="filepath", sources=["upload", "clipboard", "webcam"])
                    whole = gr.Checkbox(label="If no face is found, score the whole image", value=False)
                    image_go = gr.Button("Analyse", variant="primary")
                    image_status = gr.Markdown()
                with gr.Column(scale=2):
                    image_views = face_views_block()
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column(scale=1):
                    video_in = gr.Video(label="Video", sources=["upload"])
                    frames = gr.Slider(1, 64, value=16, step=1, label="Frames sampled evenly over the clip")
                    video_go = gr.Button("Analyse", variant="primary")
                    video_status = gr.Markdown()
                with gr.Column(scale=2):
                    video_views = face_views_block()

        for button, inputs, handler, views, status, name in (
            (image_go, [image_in, whole], service.analyse_image, image_views, image_status, "analyse_image"),
            (video_go, [video_in, frames], service.analyse_video, video_views, video_status, "analyse_video"),
        ):
            gallery, selector, table, heatmap, profile, state = views
            button.click(handler, inputs, [gallery, selector, table, heatmap, profile, state, status], api_name=name)
            selector.change(service.select_face, [state, selector], [table, heatmap, profile], api_name=False)
        with gr.Accordion("Detectors loaded", open=False):
            gr.Markdown(service.detector_status())
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="public gradio.live link (local runs only)")
    args = parser.parse_args()
    service.analyzer()  # load models once, before the first request
    build_demo().launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=DEFAULT_LIMITS.max_file_bytes,
        footer_links=["api"],
        show_error=True,  # failures before our handlers run (e.g. an undecodable upload) reach the user as text
    )


if __name__ == "__main__":
    main()

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
    gallery = gr.Gallery(label="Face crops", columns=4, height=260, object_fit="contain")
    selector = gr.Dropdown(label="Face shown in the plots", choices=[], visible=False, interactive=True)
    with gr.Row():
        heatmap = gr.Plot(label="2D FFT log-magnitude")
        profile = gr.Plot(label="Radial spectrum profile")
    state = gr.State([])
    return gallery, selector, heatmap, profile, state


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

        gallery, selector, heatmap, profile, state = image_views
        image_go.click(
            service.analyse_image, [image_in, whole], [gallery, selector, heatmap, profile, state, image_status], api_name="analyse_image"
        )
        selector.change(service.select_face, [state, selector], [heatmap, profile], api_name=False)

        gallery, selector, heatmap, profile, state = video_views
        video_go.click(
            service.analyse_video, [video_in, frames], [gallery, selector, heatmap, profile, state, video_status], api_name="analyse_video"
        )
        selector.change(service.select_face, [state, selector], [heatmap, profile], api_name=False)
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

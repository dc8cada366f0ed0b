"""Regenerate the ``QMainWindow State`` (window layout) of ``mlesam.rviz``; a developer tool.

rviz2 restores its docks from Qt's ``QMainWindow::saveState()`` blob, matched by dock name
(rviz names a dock after its panel or display). Without one, docks land wherever rviz puts
them first and the order varies. This builds the same main window offscreen — the "Tools"
toolbar, the "Displays" panel on the left, the two image displays stacked on the right
(overlay above the raw camera), the 3D view in the middle — and prints the blob as hex.
Needs PyQt5 5.15 (Humble's and Jazzy's rviz2 both use Qt 5.15); not a runtime dependency:

    pip install 'PyQt5==5.15.*' && QT_QPA_PLATFORM=offscreen python config/rviz_layout.py
"""

from __future__ import annotations

import sys

# Names must match config/mlesam.rviz: the panel's Name and the two Image displays' Name.
LEFT = ("Displays",)
RIGHT = ("Segmentation overlay", "Camera (raw)")
WINDOW = (1400, 900)  # Window Geometry: Width, Height
LEFT_WIDTH, RIGHT_WIDTH = 300, 440


def window_state() -> str:
    """Return the hex ``QMainWindow State`` of the layout described in the module docstring."""
    from PyQt5.QtCore import Qt
    from PyQt5.QtWidgets import QApplication, QDockWidget, QMainWindow, QToolBar, QWidget

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    window.setObjectName("VisualizationFrame")
    window.setCentralWidget(QWidget())
    toolbar = QToolBar("Tools")
    toolbar.setObjectName("Tools")
    window.addToolBar(toolbar)
    docks = {}
    for area, names in ((Qt.LeftDockWidgetArea, LEFT), (Qt.RightDockWidgetArea, RIGHT)):
        for name in names:
            dock = QDockWidget(name)
            dock.setObjectName(name)
            dock.setWidget(QWidget())
            window.addDockWidget(area, dock, Qt.Vertical)
            docks[name] = dock
    window.resize(*WINDOW)
    window.show()
    app.processEvents()
    window.resizeDocks([docks[LEFT[0]], docks[RIGHT[0]]], [LEFT_WIDTH, RIGHT_WIDTH], Qt.Horizontal)
    half = (WINDOW[1] - 60) // 2
    window.resizeDocks([docks[name] for name in RIGHT], [half, half], Qt.Vertical)
    app.processEvents()
    return bytes(window.saveState().toHex()).decode()


if __name__ == "__main__":
    print(window_state())
